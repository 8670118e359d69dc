"""Where a race's runs execute: here, one after another (``LocalExecutor``), or as Ray tasks
(``RayExecutor``: a local Ray instance or a cluster). Either way the driver commits every finished run
to the one results store as it arrives, so resume, ``kill -9`` and re-runs behave the same.

Ray is an optional extra (``pip install 'headstart[ray]'``); nothing here imports it until a
``RayExecutor`` runs. Each run is one task with its resource needs (CPUs, and a GPU fraction on
``cuda``); a task whose worker dies is retried by Ray (``max_retries``), and nothing of a failed attempt
reaches the store. Training callbacks (progress bars, the lab's live view, trackers' per-epoch logging)
run in the driver: with Ray they receive a run's epochs when it finishes, replayed from its record.
"""

from __future__ import annotations

import contextlib
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..declare import check_value
from ..errors import HeadstartError

if TYPE_CHECKING:
    from ..train import Callback, FeatureCache
    from .grid import RaceSpec, RunSpec
    from .prepare import RaceData

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "make_executor", "warm_features"]

RunOne = Callable[..., dict[str, Any]]
DEFAULT_CACHE = "<each node's own cache folder>"


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the duration (unchanged when None)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Executor(ABC):
    """Runs ``runs`` and yields ``(run, record)`` as each finishes (in any order)."""

    name = ""
    #: callbacks see epochs while a run trains (False: replayed from the record when it ends)
    live = True

    @abstractmethod
    def run(self, run_one: RunOne, spec: RaceSpec, data: RaceData, runs: Sequence[RunSpec], backbone: Any,
            cache: FeatureCache, callbacks_for: Callable[[RunSpec], Sequence[Callback]]
            ) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        """Each finished run with its record, as it finishes."""

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name}


class LocalExecutor(Executor):
    """One run after another in this process (the default on one machine)."""

    name = "local"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = check_value("threads", threads, "LocalExecutor", low=1, integer=True, optional=True, example=2)

    def run(self, run_one, spec, data, runs, backbone, cache, callbacks_for):
        with torch_threads(self.threads):
            for run in runs:
                yield run, run_one(spec, data, run, backbone, cache, callbacks_for(run))


def _remote_run(run_one: RunOne, spec: RaceSpec, data: RaceData, run: RunSpec, backbone: Any,
                cache_folder: str | None, threads: int) -> dict[str, Any]:
    """One run inside a Ray worker: its own thread count and feature cache (the node's default folder, unless
    the driver named one)."""
    from ..fetch import cache_dir
    from ..train import FeatureCache

    folder = cache_dir() / "features" if cache_folder == DEFAULT_CACHE else cache_folder
    with torch_threads(threads):
        return run_one(spec, data, run, backbone, FeatureCache(folder), [])


class RayExecutor(Executor):
    """Every run a Ray task; results come back to the driver, which alone writes the store.

    ``address``: a running cluster (``ray start --head`` prints it; "auto" finds a local one); None
    starts a private Ray instance on this machine, listening on 127.0.0.1 only. ``threads``: torch
    threads per run (Ray gives each task ``cpus_per_run`` CPUs; the default is one run per core pair).
    """

    name = "ray"
    live = False

    def __init__(self, address: str | None = None, *, cpus_per_run: float | None = None, gpus_per_run: float = 0.0,
                 threads: int | None = None, max_retries: int = 3, num_cpus: int | None = None) -> None:
        check_value("threads", threads, "RayExecutor", low=1, integer=True, optional=True, example=1)
        check_value("cpus_per_run", cpus_per_run, "RayExecutor", low=0, low_open=True, optional=True, example=1.0)
        check_value("gpus_per_run", gpus_per_run, "RayExecutor", low=0, example=0.0)
        check_value("max_retries", max_retries, "RayExecutor", low=0, integer=True, example=3)
        check_value("num_cpus", num_cpus, "RayExecutor", low=1, integer=True, optional=True, example=2)
        self.address, self.gpus_per_run, self.max_retries = address, gpus_per_run, max_retries
        self.threads = threads or max(1, int(cpus_per_run or 1))
        self.cpus_per_run = cpus_per_run if cpus_per_run is not None else float(self.threads)
        self.num_cpus = num_cpus
        self._started = False

    def _ray(self):
        try:
            import ray
        except ImportError:
            raise HeadstartError("--executor ray needs Ray: pip install 'headstart[ray]'.") from None
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                # workers import what this process imports (custom backbones, the caller's modules)
                paths = os.pathsep.join(p for p in sys.path if p)
                ray.init(num_cpus=self.num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                         _node_ip_address="127.0.0.1", runtime_env={"env_vars": {"PYTHONPATH": paths}})
            self._started = True
        return ray

    def run(self, run_one, spec, data, runs, backbone, cache, callbacks_for):
        ray = self._ray()
        from ..fetch import cache_dir

        if cache.folder is not None:
            warm_features(spec, data, runs, backbone, cache)

        folder = (None if cache.folder is None else DEFAULT_CACHE if cache.folder == cache_dir() / "features"
                  else str(cache.folder))
        task = ray.remote(_remote_run).options(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run,
                                               max_retries=self.max_retries)
        shared = ray.put(data)  # the data go to the object store once, not once per task
        pending = {task.remote(run_one, spec, shared, run, backbone, folder, self.threads): run for run in runs}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    run = pending.pop(ref)
                    try:
                        record = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:  # the run's own error, e.g. a HeadstartError
                        raise e.as_instanceof_cause() from None
                    yield run, record
        finally:
            for ref in pending:  # interrupted: stop what is still queued or running
                ray.cancel(ref, force=True)

    def shutdown(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "address": self.address, "cpus_per_run": self.cpus_per_run,
                "gpus_per_run": self.gpus_per_run, "threads": self.threads}


def warm_features(spec: RaceSpec, data: RaceData, runs: Sequence[RunSpec], backbone: Any,
                  cache: FeatureCache) -> None:
    """Compute, once, the pretrained body's pooled features of every example the runs will look at (their
    draws, the selection and the test part), into the cache folder the tasks read, before any task starts:
    otherwise two tasks on one node would both compute the same features."""
    from ..backbones import resolve_backbone
    from ..data import draw
    from ..strategies import create_strategy
    from ..train import AdaptedModel

    pretrained = [r for r in runs if create_strategy(r.strategy).pretrained]
    for candidate in dict.fromkeys(r.backbone for r in pretrained):  # each backbone of the race, once
        index: set[int] = set()
        for r in pretrained:
            if r.backbone == candidate:
                train, val = draw(data.task, data.splits, r.budget, seed=r.seed)
                index.update(int(i) for i in train)
                index.update(int(i) for i in val)
        name, options = (backbone, spec.backbone_options) if candidate is None else \
            spec.backbone_of(candidate)
        model = AdaptedModel(resolve_backbone(name, True, **options), len(data.task.classes))
        cache.states(model, model.features_start, data.task, sorted(index))
        for part in (data.selection, data.test):
            cache.states(model, model.features_start, part, range(len(part)))


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(name: str | None, *, address: str | None = None, threads: int | None = None,
                  device: str | None = None) -> Executor:
    """The executor a command line names (``--executor``, ``--address``, ``--threads``)."""
    name = name or "local"
    check_value("threads", threads, "", low=1, integer=True, optional=True, example=2, flag="--threads")
    if name not in EXECUTORS:
        raise HeadstartError(f"--executor must be one of {', '.join(EXECUTORS)}; got {name!r}.")
    if name == "local":
        if address:
            raise HeadstartError("--address names a Ray cluster; use it with --executor ray.")
        return LocalExecutor(threads)
    gpus = 1.0 if (device or "").startswith("cuda") else 0.0
    return RayExecutor(address, threads=threads, gpus_per_run=gpus)
