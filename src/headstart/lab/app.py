"""The lab's web app: a Starlette application (served by uvicorn) over a ``LabSession`` and its ``JobQueue``.

Endpoints (all JSON unless noted; every input is validated and a bad one is a 4xx with one sentence):

- ``GET /`` the page; ``GET /assets/<file>`` its scripts, styles and the vendored chart library
  (files of the package's ``static`` folder only);
- ``GET /api/lab`` the data, backbone, blocks and their parameter counts, budgets and learning rates;
- ``GET /api/setting?frozen=F&budget=B&lr=X`` the three entrants of a setting, with their stored runs;
- ``POST /api/train`` ``{"frozen", "budget", "lr", "patience", "only"}`` queues the setting's runs that are
  missing (they train side by side, taking turns epoch by epoch);
- ``POST /api/race/pause``, ``/resume``, ``/reset``: hold the running runs, let them go on, cancel them all;
- ``GET /api/jobs``, ``GET /api/jobs/<id>``, ``POST /api/jobs/<id>/cancel``;
- ``GET /api/runs``, ``GET /api/runs/<key>`` stored runs (a race's too), with their training curves;
- ``GET /api/curves`` learning curves, the negative-transfer verdict and the recommendation;
- ``GET /api/events`` server-sent events: jobs, epochs as they end, finished runs, store changes.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from .session import LabSession

__all__ = ["create_app"]

STATIC = Path(str(resources.files("headstart.lab") / "static"))
#: raw request paths containing any of these are refused before routing: parent steps, encoded
#: separators or dots, backslashes and NUL bytes have no business in a URL of this app
_TRICKS = ("..", "%2e", "%2f", "%5c", "\\", "%00", "\x00", "//")


def create_app(session: LabSession, *, poll_seconds: float = 1.0):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.routing import Route

    from .handlers import Handlers

    h = Handlers(session, STATIC, poll_seconds)
    routes = [
        Route("/", h.page), Route("/assets/{name:path}", h.asset), Route("/api/lab", h.lab),
        Route("/api/setting", h.setting), Route("/api/train", h.train, methods=["POST"]),
        Route("/api/jobs", h.jobs), Route("/api/jobs/{job}", h.job),
        Route("/api/jobs/{job}/cancel", h.cancel, methods=["POST"]),
        Route("/api/runs", h.runs), Route("/api/runs/{key}", h.run), Route("/api/curves", h.curves),
        Route("/api/events", h.events), Route("/api/race/{action}", h.race, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=h.lifespan,
                    exception_handlers={404: h.not_found, HTTPException: h.http_error})

    async def guard(scope: dict, receive: Any, send: Any) -> None:
        """Refuse path tricks before routing: nothing outside the package's assets is ever served."""
        if scope["type"] == "http":
            raw = scope.get("raw_path", scope["path"].encode()).decode("latin-1").lower()
            if any(t in raw for t in _TRICKS) or not raw.startswith("/"):
                response = h.refuse("That path is refused: no '..', encoded separators or backslashes in lab URLs.")
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    guard.session, guard.queue, guard.hub, guard.app = session, h.queue, h.hub, app  # type: ignore[attr-defined]
    return guard
