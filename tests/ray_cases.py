"""The race on Ray (a private local instance, 2 CPUs): the same numbers as the local executor, and a worker
killed mid-run is retried with every run stored once.

Run by ``test_ray.py`` inside a network namespace that has only the loopback interface: Ray's servers
bind every interface, so that is how the cluster a test starts listens on 127.0.0.1 only."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from headstart.race import ResultStore, run_race
from headstart.race.executors import LocalExecutor, RayExecutor, make_executor
from headstart.train import FeatureCache

from .conftest import tiny_backbone
from .race_child import toy_spec, toy_task


def tiny(pretrained: bool):
    return tiny_backbone("minilm-l6", pretrained)


def stalling(marker: str, driver: int, pretrained: bool):
    """The tiny backbone, but its first call in a Ray worker writes the worker's process id and waits to be
    killed (the driver builds it too, to warm the feature cache: not there)."""
    path = Path(marker)
    if os.getpid() != driver and not path.exists():
        path.write_text(str(os.getpid()))
        time.sleep(120)
    return tiny_backbone("minilm-l6", pretrained)


@pytest.fixture(scope="module")
def executor():
    ex = RayExecutor(threads=1, num_cpus=2)
    yield ex
    ex.shutdown()


def _numbers(records):
    return {(r["strategy"], r["budget"], r["seed"]): (r["sel_acc"], r["test_acc"], r["best_epoch"]) for r in records}


def test_a_ray_race_gives_the_local_executors_numbers(tmp_path, executor):
    spec = dict(budgets=(4, 8), seeds=2, strategies=("scratch-small", "probe", "lora"))
    local = run_race(toy_spec(**spec), tmp_path / "local", task=toy_task(), backbone=tiny, progress=False,
                     executor=LocalExecutor(threads=1))
    cache = FeatureCache(tmp_path / "features")
    remote = run_race(toy_spec(**spec), tmp_path / "ray", task=toy_task(), backbone=tiny, progress=False,
                      executor=executor, feature_cache=cache)
    assert cache.misses > 0 and list((tmp_path / "features").rglob("*.safetensors"))  # warmed once, by the driver
    assert len(remote) == 12 and _numbers(remote) == _numbers(local)
    assert {r["threads"] for r in remote} == {1}
    # resuming with Ray adds nothing: the driver's store already holds every run
    again = run_race(toy_spec(**spec), tmp_path / "ray", task=toy_task(), backbone=tiny, progress=False,
                     executor=executor)
    assert sorted(r["key"] for r in again) == sorted(r["key"] for r in remote)


def test_a_killed_worker_is_retried_and_every_run_is_stored_once(tmp_path, executor):
    marker = tmp_path / "victim.pid"
    out = tmp_path / "race"
    result: dict = {}

    def race():
        result["records"] = run_race(toy_spec(budgets=(4,), seeds=2, strategies=("scratch-small", "probe")), out,
                                     task=toy_task(), backbone=functools.partial(stalling, str(marker), os.getpid()),
                                     progress=False, executor=executor)

    thread = threading.Thread(target=race)
    thread.start()
    end = time.time() + 120
    while not marker.exists() and time.time() < end:
        time.sleep(0.1)
    time.sleep(0.5)
    victim = int(marker.read_text())
    assert victim != os.getpid()  # a Ray worker, not this process
    os.kill(victim, signal.SIGKILL)  # the worker dies mid-run; Ray runs the task again
    thread.join(300)
    assert not thread.is_alive()
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
    records = result["records"]
    assert len(records) == 4
    with ResultStore(out / "results.sqlite") as store:
        stored = store.records()
    assert len(stored) == len({r["key"] for r in stored}) == 4


def test_the_command_line_names_its_executor():
    assert isinstance(make_executor(None), LocalExecutor)
    assert make_executor("ray", threads=2).threads == 2
    assert make_executor("ray", device="cuda").gpus_per_run == 1.0 and make_executor("ray").gpus_per_run == 0.0
    with pytest.raises(Exception, match="--address names a Ray cluster"):
        make_executor("local", address="auto")
