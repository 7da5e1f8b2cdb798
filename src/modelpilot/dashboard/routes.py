"""``/dashboard``: the page and its static files, served from the package (no build step)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from modelpilot.errors import NotFound

router = APIRouter(tags=["Dashboard"])

_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}


def _read(name: str) -> bytes:
    static = resources.files("modelpilot.dashboard") / "static"
    entry = static / name
    if "/" in name or name.startswith(".") or not entry.is_file():
        raise NotFound(f"no dashboard file {name!r}")
    return entry.read_bytes()


@router.get("/dashboard", response_class=HTMLResponse, summary="Live dashboard")
async def dashboard(request: Request) -> HTMLResponse:
    # ModelPilot's app says whether it monitors; an app that only mounts this router (the
    # dashboard's own tests) serves the page.
    state = request.app.state
    if hasattr(state, "monitoring") and getattr(state.monitoring, "monitor", None) is None:
        # Its data (/api/dashboard) would be refused: say why here, not on a page that
        # retries forever.
        raise NotFound(
            "the dashboard shows what monitoring measures, and monitoring is off on this "
            "server (MODELPILOT_MONITORING=false)"
        )
    return HTMLResponse(_read("dashboard.html"), headers={"cache-control": "no-cache"})


@router.get("/dashboard/static/{name}", include_in_schema=False)
async def static_file(name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    media = _TYPES.get(suffix, "application/octet-stream")
    return Response(_read(name), media_type=media, headers={"cache-control": "no-cache"})
