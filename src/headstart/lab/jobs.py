"""The lab's job queue: up to three runs train at once, taking turns epoch by epoch (``turns.py``).

"Train all three" queues the three entrants together, and each starts in a worker thread of its own;
one computes at a time and hands over at the end of every epoch, so the three curves grow side by side
while each run gets the whole machine for its turn and counts only its own compute. Jobs live in
``lab.sqlite`` beside the race store, so a restarted server finds its queue again: a job that was
running when the server stopped is queued again (a run reaches the store only when it finishes, so
nothing half-done is kept). Every job is an ordinary race run; a setting already in the store finishes
at once without training. Cancelling a queued job drops it; cancelling a running one stops it at the end
of its current epoch (or stage, for a probe solved in one go), and nothing of it is stored: the last
check runs just before the run would reach the store. Pausing holds every running job at its next
hand-over; resetting cancels every queued and running job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HeadstartError
from ..race.runner import race_lock
from ..storage import Database
from ..train import Callback, EpochRecord, FitResult
from ..train.clock import compute_time
from .events import EventHub
from .session import LabSession, public_record
from .turns import Turns

__all__ = ["Job", "JobCancelled", "JobQueue"]

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    strategy TEXT NOT NULL, budget INTEGER NOT NULL, lr REAL, key TEXT NOT NULL,
    state TEXT NOT NULL,       -- queued | running | done | failed | cancelled
    message TEXT, created REAL NOT NULL, started REAL, ended REAL
);
"""
#: columns added to the table since it was first written (a lab.sqlite from before is widened on open)
ADDED = {"patience": "INTEGER"}
ACTIVE = ("queued", "running")
TOGETHER = 3  # runs training at once, taking turns: the three entrants of a race


class JobCancelled(Exception):
    """Raised inside the training loop (from a callback) to stop a cancelled job."""


@dataclass
class Job:
    id: int
    strategy: str
    budget: int
    lr: float | None
    key: str
    state: str
    message: str | None = None
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    patience: int | None = None  # early stopping on validation accuracy with this patience (None: the default)
    #: the live run: stages as they start, and every epoch with the early-stopping state after it
    live: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, live: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if not live:
            d.pop("live")
        return d


class LiveCallback(Callback):
    """Streams a run as it trains: what it is doing between epochs (``phase``), each stage's plan, each epoch with
    the best epoch so far and the patience left (the early-stopping state the loop's ``EarlyStopping`` callback
    wrote into the epoch's record), and how each stage ended; every event carries the run's own compute so far
    (``compute``: seconds since its fit began, its waits for the others' turns left out). At the end of each epoch
    it hands the turn to the next run. Raises ``JobCancelled`` at the next epoch once the job is cancelled."""

    def __init__(self, queue: JobQueue, job: Job) -> None:
        self.queue, self.job = queue, job
        self._info: dict[str, Any] = {}
        self._tic = time.time()
        self._zero: float | None = None  # compute_time() when the fit began

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        compute = None if self._zero is None else compute_time() - self._zero
        event = {"type": kind, "job": self.job.id, "key": self.job.key, "strategy": self.job.strategy,
                 "time": time.time(), "elapsed": time.time() - self._tic, "compute": compute, **payload}
        self.job.live.append(self.queue.hub.publish(event))

    def _check(self) -> None:
        if self.queue.cancel_requested(self.job.id):
            raise JobCancelled()

    def on_phase(self, phase: str, detail: str = "") -> None:
        if phase == "training" and self._zero is None:
            self._zero = compute_time()
        self._emit("phase", {"phase": phase, "detail": detail})
        self._check()

    def on_fit_start(self, info: dict[str, Any]) -> None:
        self._check()
        self._info = info
        self._emit("stage", {k: info.get(k) for k in ("stage", "epochs", "steps_per_epoch", "trainable_params",
                                                     "patience", "min_epochs", "monitor")})

    def on_epoch_end(self, record: EpochRecord) -> None:
        self._emit("epoch", {**asdict(record), "patience": self._info.get("patience"),
                             "planned": self._info.get("epochs")})
        self._take_turns()

    def on_solved(self, info: dict[str, Any]) -> None:
        self._emit("solved", info)  # the probe's point: its cross-validated accuracy, before it is scored
        if info.get("stage") == self.job.strategy:  # the run's own point (a fine-tune's first stage has none: it
            self._take_turns()  # keeps the turn until its epoch 0)

    def _take_turns(self) -> None:
        """Hand the turn to the next run and wait for it to come back (alone and not paused: carry on)."""
        self._check()
        turns = self.queue.turns
        if turns.holder == self.job.id and (turns.waiting or turns.paused):
            self._emit("wait", {})
            turns.hand_over(self.job.id, lambda: self.queue.cancel_requested(self.job.id))
            self._emit("turn", {})
        self._check()

    def on_fit_end(self, result: FitResult) -> None:
        self._emit("stage_end", {"stage": self._info.get("stage"), "stop_reason": result.stop_reason.value,
                                 "best_epoch": result.best_epoch, "best_val_acc": result.best_val_acc})
        self._check()

    def on_run_end(self, record: dict[str, Any]) -> None:
        self._check()  # a cancel that came while the run was scored (or a one-shot probe solved): nothing is stored


class SharedFolderLock:
    """The folder's race lock, held while any of the lab's runs trains and released after the last: the runs the
    lab trains side by side share it, and a ``compare`` into the folder meanwhile is refused, as ever."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._held: Any = None

    def __call__(self, out: Path) -> Any:
        return self._use(out)

    @contextmanager
    def _use(self, out: Path) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._held = race_lock(out)
                self._held.__enter__()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    held, self._held = self._held, None
                    held.__exit__(None, None, None)


def warm_up() -> None:
    """What a process's first run pays once, paid while the page loads instead of after the click: the optimiser's
    first construction imports ``torch._dynamo`` (about 1.5 s on two cores, measured in the lab benchmark)."""
    import torch

    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


class JobQueue:
    def __init__(self, session: LabSession, hub: EventHub) -> None:
        self.session, self.hub = session, hub
        self.turns = Turns()
        self._db_path = Path(session.folder) / "lab.sqlite"
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._cancel: set[int] = set()
        self._jobs: dict[int, Job] = {}
        self._closing = False
        self._folder_lock = SharedFolderLock()
        with self._connect() as db:
            columns = {row[1] for row in db.rows("PRAGMA table_info(jobs)")}
            for name, kind in ADDED.items():  # a lab.sqlite written before these columns existed
                if name not in columns:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
            # restart recovery: a job running when the server stopped left nothing in the store; run it again
            db.execute("UPDATE jobs SET state = 'queued', started = NULL WHERE state = 'running'")
            for row in db.rows("SELECT id, strategy, budget, lr, key, state, message, created, started, ended, "
                               "patience FROM jobs ORDER BY id"):
                self._jobs[row[0]] = Job(*row)
        self._warm = threading.Thread(target=warm_up, name="headstart-lab-warm-up", daemon=True)
        self._warm.start()
        self._workers = [threading.Thread(target=self._work, name=f"headstart-lab-worker-{i}", daemon=True)
                         for i in range(TOGETHER)]
        for worker in self._workers:
            worker.start()

    def _connect(self) -> Database:
        """A short-lived connection: the worker thread and the request handlers each open their own."""
        return Database(self._db_path, SCHEMA, "the lab's job queue")

    def _save(self, job: Job) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET state = ?, message = ?, started = ?, ended = ? WHERE id = ?",
                       (job.state, job.message, job.started, job.ended, job.id))

    def _announce(self, job: Job) -> None:
        self.hub.publish({"type": "job", "job": job.id, **job.to_dict(live=False)})

    # -- what the API calls ------------------------------------------------------------------------
    def submit(self, strategy: str, budget: int, lr: float | None, patience: int | None = None) -> Job:
        """Queue a setting; the same setting already queued or running is that job, not a second one."""
        key = self.session.key(strategy, budget, lr, patience=patience)
        with self._lock:
            same = next((j for j in self._jobs.values() if j.key == key and j.state in ACTIVE), None)
            if same is not None:
                return same
            with self._connect() as db:
                cur = db.execute("INSERT INTO jobs (strategy, budget, lr, key, state, created, patience) VALUES "
                                 "(?, ?, ?, ?, 'queued', ?, ?)", (strategy, budget, lr, key, time.time(), patience))
                job = Job(cur.lastrowid, strategy, budget, lr, key, "queued", created=time.time(), patience=patience)
            self._jobs[job.id] = job
            self._wake.notify_all()
        self._announce(job)
        return job

    def cancel(self, job_id: int) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job.state == "queued":
                job.state, job.ended, job.message = "cancelled", time.time(), "cancelled before it started"
                self._save(job)
            elif job.state == "running":
                self._cancel.add(job_id)
        self._announce(job)
        return job

    def cancel_requested(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._cancel or self._closing

    def reset(self) -> list[Job]:
        """Cancel every queued and running job (the race's reset); returns them."""
        active = [j for j in self.jobs() if j.state in ACTIVE]
        for job in active:
            self.cancel(job.id)
        self.resume()  # a paused job must reach its hand-over to stop
        return active

    def pause(self) -> None:
        self.turns.pause()
        self.hub.publish({"type": "race", "paused": True})

    def resume(self) -> None:
        self.turns.resume()
        self.hub.publish({"type": "race", "paused": False})

    def get(self, job_id: int) -> Job:
        with self._lock:
            if job_id not in self._jobs:
                raise KeyError(job_id)
            return self._jobs[job_id]

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def wait_idle(self, timeout: float) -> bool:
        """Until nothing is queued or running (tests, and a clean shutdown)."""
        end = time.time() + timeout
        while time.time() < end:
            if not any(j.state in ACTIVE for j in self.jobs()):
                return True
            time.sleep(0.05)
        return False

    def close(self, timeout: float = 30.0) -> None:
        """Stop the workers: a running job is stopped at its next epoch and stays queued for next time."""
        with self._lock:
            self._closing = True
            self._wake.notify_all()
        self.turns.resume()
        end = time.time() + timeout
        for worker in self._workers:
            worker.join(max(0.0, end - time.time()))

    # -- the worker ----------------------------------------------------------------------------------
    def _next(self) -> Job | None:
        with self._lock:
            while not self._closing:
                queued = [j for j in self._jobs.values() if j.state == "queued"]
                if queued:
                    job = min(queued, key=lambda j: j.id)
                    job.state, job.started, job.live = "running", time.time(), []
                    self._save(job)
                    return job
                self._wake.wait(timeout=1.0)
            return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            self._announce(job)
            try:
                record = self.session.record(job.key)
                if record is None:
                    self.turns.enter(job.id, lambda job=job: self.cancel_requested(job.id))
                    if self.cancel_requested(job.id):
                        raise JobCancelled()
                    record = self.session.train(job.strategy, job.budget, job.lr, [LiveCallback(self, job)],
                                                patience=job.patience, lock=self._folder_lock)
                job.state, job.message = "done", None
                self.hub.publish({"type": "run", "job": job.id, "record": public_record(record)})
            except JobCancelled:
                with self._lock:
                    closing = self._closing and job.id not in self._cancel
                    self._cancel.discard(job.id)
                if closing:  # the server is stopping: run it again next time
                    job.state, job.started = "queued", None
                    self._save(job)
                    return
                job.state, job.message = "cancelled", "cancelled while training; nothing of it was stored"
            except HeadstartError as e:
                job.state, job.message = "failed", str(e)
            except Exception as e:  # a bug: the lab keeps serving, the job says what happened
                log.exception("lab job %s failed", job.id)
                job.state, job.message = "failed", f"{type(e).__name__}: {e}"
            finally:
                self.turns.leave(job.id)
            job.ended = time.time()
            try:
                self._save(job)
            except HeadstartError as e:  # the disk filled up or the file broke: say so, keep serving
                log.error("%s", e)
                job.message = f"{job.message + '; ' if job.message else ''}{e}"
            self._announce(job)
