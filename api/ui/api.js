// The API from the browser: the key in sessionStorage (never in a URL or a log), JSON requests
// with "Authorization: Bearer", downloads through Blob URLs, and the SSE event stream read with
// fetch (EventSource cannot send a header).

const KEY = "mar.apiKey";
// The API's root: the dashboard lives at <root>/ui/.
const ROOT = location.pathname.replace(/\/ui(\/.*)?$/, "");

export const getKey = () => sessionStorage.getItem(KEY);
export const setKey = (key) => sessionStorage.setItem(KEY, key);
export const clearKey = () => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const jobPath = (id, rest = "") => `/jobs/${encodeURIComponent(id)}${rest}`;
export const artifactPath = (id, name) =>
  jobPath(id, `/artifacts/${name.split("/").map(encodeURIComponent).join("/")}`);

async function request(path, options = {}) {
  const headers = { Authorization: `Bearer ${getKey() || ""}`, ...(options.headers || {}) };
  const res = await fetch(ROOT + path, { ...options, headers });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = await res.json();
      message = body.detail.map((d) => d.message).join("; ");
    } catch {
      // not the API's error body: keep the status line
    }
    throw new ApiError(res.status, message);
  }
  return res;
}

export const getJSON = async (path) => (await request(path)).json();
export const postJSON = async (path) => (await request(path, { method: "POST" })).json();

/** A Blob URL of an artifact (for <img>): revoke it when the page goes. */
export async function blobURL(path) {
  return URL.createObjectURL(await (await request(path)).blob());
}

/** Save a file fetched with the key under `filename`. */
export async function download(path, filename) {
  const url = await blobURL(path);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Read /jobs/{id}/events/stream until it ends or `signal` aborts; call onEvent(event) per frame. */
export async function streamEvents(id, after, onEvent, signal) {
  const query = after ? `?after=${after}` : "";
  const res = await request(jobPath(id, `/events/stream${query}`), {
    signal,
    headers: { Accept: "text/event-stream" },
  });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}
