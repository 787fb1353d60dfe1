// The dashboard's shell: sign-in with an API key (kept in sessionStorage), a hash router
// (#/jobs, #/job/ID, #/compare?jobs=...) and one error banner.

import { ApiError, clearKey, getJSON, getKey, setKey } from "./api.js";
import * as compare from "./compare.js";
import * as job from "./job.js";
import * as jobs from "./jobs.js";

const $ = (id) => document.getElementById(id);
let leave = () => {};

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function fail(error) {
  if (error instanceof ApiError && error.status === 401) {
    clearKey();
    signIn(`Sign-in failed: ${error.message}`);
    return;
  }
  showError(error.message || String(error));
}

function signIn(message = "") {
  leave();
  leave = () => {};
  $("view").replaceChildren();
  $("login").hidden = false;
  $("logout").hidden = true;
  showError(message);
  $("api-key").focus();
}

function route() {
  leave();
  if (!getKey()) return signIn();
  $("login").hidden = true;
  $("logout").hidden = false;
  showError("");
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = Object.fromEntries(new URLSearchParams(query));
  const parts = path.split("/").filter(Boolean);
  const view = $("view");
  delete view.dataset.loaded;
  const ctx = { fail };
  if (parts[0] === "job" && parts[1]) leave = job.render(view, { id: decodeURIComponent(parts[1]) }, ctx);
  else if (parts[0] === "compare") leave = compare.render(view, params, ctx);
  else leave = jobs.render(view, params, ctx);
  view.focus();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("api-key");
  setKey(input.value.trim());
  input.value = "";
  try {
    await getJSON("/jobs?limit=1");
    route();
  } catch (error) {
    fail(error);
  }
});

$("logout").addEventListener("click", () => {
  clearKey();
  signIn();
});

window.addEventListener("hashchange", route);
route();
