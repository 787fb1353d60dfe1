"""The dashboard: static files (HTML, JS, CSS) under ``/ui``, no key needed (they hold no data;
the pages call the JSON routes with the API key the user signs in with)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
UI_PATH = "/ui"


def mount_ui(app: FastAPI) -> None:
    """Serve ``api/ui/`` at ``/ui/`` (``/ui`` redirects there)."""

    @app.get(UI_PATH, include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse(f"{UI_PATH}/")

    app.mount(UI_PATH, StaticFiles(directory=UI_DIR, html=True), name="ui")


def compare_url(
    base_url: str, job_ids: list[str], teacher: str | None = None, teacher_ap: float | None = None
) -> str:
    """The dashboard's compare view of ``job_ids``, with a teacher's AP as a line: that of the job
    ``teacher``, or the value ``teacher_ap``."""
    url = f"{base_url.rstrip('/')}{UI_PATH}/#/compare?jobs={','.join(job_ids)}"
    if teacher:
        return f"{url}&teacher={teacher}"
    return f"{url}&teacher_ap={teacher_ap:.4f}" if teacher_ap is not None else url
