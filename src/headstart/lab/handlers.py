"""The lab's endpoints, one method each, over a ``LabSession``, its ``JobQueue`` and the event hub (``app.py``
lists them and builds the application)."""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from .events import EventHub
from .jobs import JobQueue
from .session import LabSession, public_record

__all__ = ["Handlers"]

_KEY = re.compile(r"[0-9a-f]{20}")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Handlers:
    """Every endpoint of the lab; ``static`` is the folder its page and assets come from."""

    def __init__(self, session: LabSession, static: Path, poll_seconds: float) -> None:
        self.session, self.static, self.poll_seconds = session, static, poll_seconds
        self.hub = EventHub()
        self.queue = JobQueue(session, self.hub)

    def refuse(self, message: str) -> JSONResponse:
        return _error(400, message)

    async def watch_store(self) -> None:
        """Publish a ``store`` event whenever any process (a ``compare`` too) adds a run to the store."""
        last = await asyncio.to_thread(self.session.store_state)
        while True:
            await asyncio.sleep(self.poll_seconds)
            now = await asyncio.to_thread(self.session.store_state)
            if now != last:
                last = now
                self.hub.publish({"type": "store", "runs": now[0]})

    @asynccontextmanager
    async def lifespan(self, app: Any):
        watcher = asyncio.create_task(self.watch_store())
        try:
            yield
        finally:
            watcher.cancel()
            await asyncio.to_thread(self.queue.close)

    async def page(self, request: Request) -> Response:
        return FileResponse(self.static / "index.html", headers={"Cache-Control": "no-cache"})

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*", name) or name.startswith("."):
            return _error(400, f"{name!r} is not an asset name; assets are plain file names under /assets/.")
        path = (self.static / name).resolve()
        if self.static.resolve() not in path.parents or not path.is_file():
            return _error(404, f"There is no asset {name!r}.")
        return FileResponse(path)

    async def lab(self, request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(self.session.describe))

    def parse_setting(self, params: Any) -> tuple[int, float | None, int, int | None]:
        unknown = set(params) - {"frozen", "budget", "lr", "patience", "only"}
        if unknown:
            raise ValueError(f"unknown field {sorted(unknown)[0]!r}; a setting has frozen, budget, lr, patience "
                             "(and only)")
        budget, lr, frozen = self.session.check_setting(params.get("budget"), params.get("lr"), params.get("frozen"))
        if frozen is None:
            raise ValueError(f"frozen blocks are missing; give a whole number from 0 to {self.session.n_blocks}")
        return budget, lr, frozen, self.session.check_patience(params.get("patience"))

    def entrants(self, budget: int, lr: float | None, frozen: int, patience: int | None = None) -> list[dict[str, Any]]:
        out = []
        for role, strategy in self.session.entrants(frozen):
            tune = role == "finetune"
            key = self.session.key(strategy, budget, lr if tune else None, patience=patience if tune else None)
            record = self.session.record(key)
            job = next((j for j in self.queue.jobs() if j.key == key and j.state in ("queued", "running")), None)
            out.append({"role": role, "strategy": strategy, "key": key,
                        "record": public_record(record) if record else None,
                        "job": job.to_dict() if job else None})
        return out

    async def setting(self, request: Request) -> Response:
        try:
            budget, lr, frozen, patience = await asyncio.to_thread(self.parse_setting, dict(request.query_params))
        except ValueError as e:
            return _error(422, str(e).capitalize() + ".")
        result = await asyncio.to_thread(self.entrants, budget, lr, frozen, patience)
        strip = await asyncio.to_thread(self.session.strip, result[-1]["strategy"])
        return JSONResponse({"budget": budget, "lr": lr, "frozen": frozen, "patience": patience, "entrants": result,
                             "strip": strip, "paused": self.queue.turns.paused})

    async def train(self, request: Request) -> Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "The request body must be JSON, e.g. {\"frozen\": 4, \"budget\": 8}.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object, e.g. {\"frozen\": 4, \"budget\": 8}.")
        only = body.get("only")
        try:
            budget, lr, frozen, patience = await asyncio.to_thread(self.parse_setting, body)
            roles = [role for role, _ in self.session.entrants(frozen)]
            if only is not None and only not in roles:
                raise ValueError(f"only must be one of {roles}; got {only!r}")
        except ValueError as e:
            return _error(422, str(e).capitalize() + ".")
        jobs = []
        for item in await asyncio.to_thread(self.entrants, budget, lr, frozen, patience):
            if (only is None or item["role"] == only) and item["record"] is None:
                tune = item["role"] == "finetune"
                job = await asyncio.to_thread(self.queue.submit, item["strategy"], budget, lr if tune else None,
                                              patience if tune else None)
                jobs.append(job.to_dict(live=False))
        if jobs:
            self.queue.resume()  # pressing Train after a pause plays on
        return JSONResponse({"queued": jobs}, status_code=202 if jobs else 200)

    async def race(self, request: Request) -> Response:
        """``POST /api/race/pause``, ``/resume``, ``/reset``: hold every running run at its next hand-over, let them
        go on, or cancel every queued and running one."""
        action = request.path_params["action"]
        if action == "pause":
            self.queue.pause()
        elif action == "resume":
            self.queue.resume()
        elif action == "reset":
            cancelled = await asyncio.to_thread(self.queue.reset)
            return JSONResponse({"paused": False, "cancelled": [j.id for j in cancelled]})
        else:
            return _error(404, f"There is no race action {action!r}; use pause, resume or reset.")
        return JSONResponse({"paused": self.queue.turns.paused})

    def job_of(self, request: Request):
        raw = request.path_params["job"]
        if not raw.isdigit():
            raise HTTPException(400, f"{raw!r} is not a job number.")
        try:
            return self.queue.get(int(raw))
        except KeyError:
            raise HTTPException(404, f"There is no job {raw}.") from None

    async def jobs(self, request: Request) -> Response:
        return JSONResponse({"jobs": [j.to_dict(live=False) for j in self.queue.jobs()]})

    async def job(self, request: Request) -> Response:
        return JSONResponse(self.job_of(request).to_dict())

    async def cancel(self, request: Request) -> Response:
        found = self.job_of(request)
        if found.state not in ("queued", "running"):
            return _error(409, f"Job {found.id} has already ended ({found.state}); there is nothing to cancel.")
        return JSONResponse(self.queue.cancel(found.id).to_dict(live=False))

    async def runs(self, request: Request) -> Response:
        records = await asyncio.to_thread(self.session.records)
        keep = ("key", "strategy", "budget", "seed", "sel_acc", "test_acc", "stop_reason", "best_epoch", "epochs",
                "finished", "lr")
        return JSONResponse({"runs": [{k: public_record(r)[k] for k in keep} for r in records]})

    async def run(self, request: Request) -> Response:
        key = request.path_params["key"]
        if not _KEY.fullmatch(key):
            return _error(400, f"{key!r} is not a run key (20 hexadecimal characters).")
        record = await asyncio.to_thread(self.session.record, key)
        if record is None:
            return _error(404, f"There is no run {key} in {self.session.folder}.")
        return JSONResponse(public_record(record))

    async def curves(self, request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(self.session.curves))

    async def events(self, request: Request) -> Response:
        after = request.headers.get("last-event-id") or request.query_params.get("after", "0")
        if not after.isdigit():
            return _error(400, f"'after' must be an event number; got {after!r}.")
        handle, missed = self.hub.subscribe(int(after))

        async def stream():
            try:
                for event in missed:
                    yield {"id": str(event["id"]), "data": json.dumps(event)}
                while True:
                    event = await handle[1].get()
                    yield {"id": str(event["id"]), "data": json.dumps(event)}
            finally:
                self.hub.unsubscribe(handle)

        return EventSourceResponse(stream(), ping=10)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        detail = getattr(exc, "detail", None)
        if detail and detail != "Not Found":
            return _error(404, str(detail))
        return _error(404, f"There is nothing at {request.url.path}; the lab's pages are / and /api/....")

    async def http_error(self, request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))
