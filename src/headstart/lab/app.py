"""The lab's web app: a Starlette application (served by uvicorn) over a ``LabSession`` and its ``JobQueue``.

Endpoints (all JSON unless noted; every input is validated and a bad one is a 4xx with one sentence):

- ``GET /`` the page; ``GET /assets/<file>`` its scripts, styles and the vendored chart library
  (files of the package's ``static`` folder only);
- ``GET /api/lab`` the data, backbone, blocks and their parameter counts, budgets and learning rates;
- ``GET /api/setting?frozen=F&budget=B&lr=X`` the three entrants of a setting, with their stored runs;
- ``POST /api/train`` ``{"frozen", "budget", "lr", "only"}`` queues the setting's runs that are missing;
- ``GET /api/jobs``, ``GET /api/jobs/<id>``, ``POST /api/jobs/<id>/cancel``;
- ``GET /api/runs``, ``GET /api/runs/<key>`` stored runs (a race's too), with their training curves;
- ``GET /api/curves`` learning curves, the negative-transfer verdict and the recommendation;
- ``GET /api/events`` server-sent events: jobs, epochs as they end, finished runs, store changes.
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from .events import EventHub
from .jobs import JobQueue
from .session import LabSession, public_record

__all__ = ["create_app"]

STATIC = Path(str(resources.files("headstart.lab") / "static"))
_KEY = re.compile(r"[0-9a-f]{20}")
#: raw request paths containing any of these are refused before routing: parent steps, encoded
#: separators or dots, backslashes and NUL bytes have no business in a URL of this app
_TRICKS = ("..", "%2e", "%2f", "%5c", "\\", "%00", "\x00", "//")


def create_app(session: LabSession, *, poll_seconds: float = 1.0):
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    hub = EventHub()
    queue = JobQueue(session, hub)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def watch_store() -> None:
        """Publish a ``store`` event whenever any process (a ``compare`` too) adds a run to the store."""
        last = await asyncio.to_thread(session.store_state)
        while True:
            await asyncio.sleep(poll_seconds)
            now = await asyncio.to_thread(session.store_state)
            if now != last:
                last = now
                hub.publish({"type": "store", "runs": now[0]})

    @asynccontextmanager
    async def lifespan(app: Any):
        watcher = asyncio.create_task(watch_store())
        try:
            yield
        finally:
            watcher.cancel()
            await asyncio.to_thread(queue.close)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*", name) or name.startswith("."):
            return error(400, f"{name!r} is not an asset name; assets are plain file names under /assets/.")
        path = (STATIC / name).resolve()
        if STATIC.resolve() not in path.parents or not path.is_file():
            return error(404, f"There is no asset {name!r}.")
        return FileResponse(path)

    async def lab(request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(session.describe))

    def parse_setting(params: Any) -> tuple[int, float | None, int]:
        unknown = set(params) - {"frozen", "budget", "lr", "only"}
        if unknown:
            raise ValueError(f"unknown field {sorted(unknown)[0]!r}; a setting has frozen, budget, lr (and only)")
        budget, lr, frozen = session.check_setting(params.get("budget"), params.get("lr"), params.get("frozen"))
        if frozen is None:
            raise ValueError(f"frozen blocks are missing; give a whole number from 0 to {session.n_blocks}")
        return budget, lr, frozen

    def entrants(budget: int, lr: float | None, frozen: int) -> list[dict[str, Any]]:
        out = []
        for role, strategy in session.entrants(frozen):
            key = session.key(strategy, budget, lr if role == "finetune" else None)
            record = session.record(key)
            job = next((j for j in queue.jobs() if j.key == key and j.state in ("queued", "running")), None)
            out.append({"role": role, "strategy": strategy, "key": key,
                        "record": public_record(record) if record else None,
                        "job": job.to_dict() if job else None})
        return out

    async def setting(request: Request) -> Response:
        try:
            budget, lr, frozen = await asyncio.to_thread(parse_setting, dict(request.query_params))
        except ValueError as e:
            return error(422, str(e).capitalize() + ".")
        result = await asyncio.to_thread(entrants, budget, lr, frozen)
        strip = await asyncio.to_thread(session.strip, result[-1]["strategy"])
        return JSONResponse({"budget": budget, "lr": lr, "frozen": frozen, "entrants": result, "strip": strip})

    async def train(request: Request) -> Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, "The request body must be JSON, e.g. {\"frozen\": 4, \"budget\": 8}.")
        if not isinstance(body, dict):
            return error(400, "The request body must be a JSON object, e.g. {\"frozen\": 4, \"budget\": 8}.")
        only = body.get("only")
        try:
            budget, lr, frozen = await asyncio.to_thread(parse_setting, body)
            roles = [role for role, _ in session.entrants(frozen)]
            if only is not None and only not in roles:
                raise ValueError(f"only must be one of {roles}; got {only!r}")
        except ValueError as e:
            return error(422, str(e).capitalize() + ".")
        jobs = []
        for item in await asyncio.to_thread(entrants, budget, lr, frozen):
            if (only is None or item["role"] == only) and item["record"] is None:
                job = await asyncio.to_thread(queue.submit, item["strategy"], budget,
                                              lr if item["role"] == "finetune" else None)
                jobs.append(job.to_dict(live=False))
        return JSONResponse({"queued": jobs}, status_code=202 if jobs else 200)

    def job_of(request: Request):
        raw = request.path_params["job"]
        if not raw.isdigit():
            raise HTTPException(400, f"{raw!r} is not a job number.")
        try:
            return queue.get(int(raw))
        except KeyError:
            raise HTTPException(404, f"There is no job {raw}.") from None

    async def jobs(request: Request) -> Response:
        return JSONResponse({"jobs": [j.to_dict(live=False) for j in queue.jobs()]})

    async def job(request: Request) -> Response:
        return JSONResponse(job_of(request).to_dict())

    async def cancel(request: Request) -> Response:
        found = job_of(request)
        if found.state not in ("queued", "running"):
            return error(409, f"Job {found.id} has already ended ({found.state}); there is nothing to cancel.")
        return JSONResponse(queue.cancel(found.id).to_dict(live=False))

    async def runs(request: Request) -> Response:
        records = await asyncio.to_thread(session.records)
        keep = ("key", "strategy", "budget", "seed", "sel_acc", "test_acc", "stop_reason", "best_epoch", "epochs",
                "finished", "lr")
        return JSONResponse({"runs": [{k: public_record(r)[k] for k in keep} for r in records]})

    async def run(request: Request) -> Response:
        key = request.path_params["key"]
        if not _KEY.fullmatch(key):
            return error(400, f"{key!r} is not a run key (20 hexadecimal characters).")
        record = await asyncio.to_thread(session.record, key)
        if record is None:
            return error(404, f"There is no run {key} in {session.folder}.")
        return JSONResponse(public_record(record))

    async def curves(request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(session.curves))

    async def events(request: Request) -> Response:
        after = request.headers.get("last-event-id") or request.query_params.get("after", "0")
        if not after.isdigit():
            return error(400, f"'after' must be an event number; got {after!r}.")
        handle, missed = hub.subscribe(int(after))

        async def stream():
            try:
                for event in missed:
                    yield {"id": str(event["id"]), "data": json.dumps(event)}
                while True:
                    event = await handle[1].get()
                    yield {"id": str(event["id"]), "data": json.dumps(event)}
            finally:
                hub.unsubscribe(handle)

        return EventSourceResponse(stream(), ping=10)

    async def not_found(request: Request, exc: Exception) -> Response:
        detail = getattr(exc, "detail", None)
        if detail and detail != "Not Found":
            return error(404, str(detail))
        return error(404, f"There is nothing at {request.url.path}; the lab's pages are / and /api/....")

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error(exc.status_code, str(exc.detail))

    routes = [
        Route("/", page), Route("/assets/{name:path}", asset), Route("/api/lab", lab),
        Route("/api/setting", setting), Route("/api/train", train, methods=["POST"]),
        Route("/api/jobs", jobs), Route("/api/jobs/{job}", job),
        Route("/api/jobs/{job}/cancel", cancel, methods=["POST"]),
        Route("/api/runs", runs), Route("/api/runs/{key}", run), Route("/api/curves", curves),
        Route("/api/events", events),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, HTTPException: http_error})

    async def guard(scope: dict, receive: Any, send: Any) -> None:
        """Refuse path tricks before routing: nothing outside the package's assets is ever served."""
        if scope["type"] == "http":
            raw = scope.get("raw_path", scope["path"].encode()).decode("latin-1").lower()
            if any(t in raw for t in _TRICKS) or not raw.startswith("/"):
                response = error(400, "That path is refused: no '..', encoded separators or backslashes in lab URLs.")
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    guard.session, guard.queue, guard.hub, guard.app = session, queue, hub, app  # type: ignore[attr-defined]
    return guard
