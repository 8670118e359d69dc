"""The lab's API and job queue on a tiny backbone: train all three, the pill's count, cancel, restart
recovery, two watchers of one run, a race folder opened beside `compare`, and every bad input refused."""

from __future__ import annotations

import asyncio
import csv
import http.client
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from headstart.lab.app import create_app
from headstart.lab.architecture import finetune_for
from headstart.lab.events import EventHub
from headstart.lab.session import LabSession
from headstart.race import ResultStore, run_race

from .conftest import tiny_backbone
from .race_child import toy_spec, toy_task

FAST = {"epochs": 2, "precision": "fp32"}


def tiny(pretrained: bool):
    return tiny_backbone("minilm-l6", pretrained)


def open_lab(csv_path: Path, folder: Path, **train) -> LabSession:
    return LabSession.open(str(csv_path), out=str(folder), train_options={**FAST, **train}, backbone_factory=tiny,
                           test_limit=40)


@pytest.fixture
def lab(toy_csv, tmp_path):
    app = create_app(open_lab(toy_csv, tmp_path / "lab"), poll_seconds=0.1)
    with TestClient(app) as client:
        yield client, app


def wait_for(predicate, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_the_pill_is_the_trainable_count_of_the_run_the_slider_sets(lab):
    client, app = lab
    info = client.get("/api/lab").json()
    blocks, head = info["blocks"], info["head"]
    assert [b["name"] for b in blocks][0] == "embeddings" and head > 0
    for frozen in range(len(blocks) + 1):  # what the page computes from per-block counts, without a model
        pill = head + sum(b["params"] for b in blocks[frozen:])
        assert pill == app.session.strip(finetune_for(frozen, len(blocks)))["trainable"]
    client.post("/api/train", json={"frozen": 1, "budget": 8, "only": "finetune"})
    assert app.queue.wait_idle(120)
    setting = client.get("/api/setting", params={"frozen": 1, "budget": 8}).json()
    tuned = setting["entrants"][-1]
    assert tuned["strategy"] == f"partial:{len(blocks) - 1}"
    assert tuned["record"]["trainable_params"] == head + sum(b["params"] for b in blocks[1:])
    assert [b["trainable"] > 0 for b in setting["strip"]["blocks"]] == [False] + [True] * (len(blocks) - 1)


def test_train_all_three_streams_epochs_and_keeps_every_run_once(lab):
    client, app = lab
    done = client.post("/api/train", json={"frozen": 0, "budget": 8, "lr": "1e-4"})
    assert done.status_code == 202
    queued = done.json()["queued"]
    assert [j["strategy"] for j in queued] == ["scratch-small", "probe", "full"] and queued[2]["lr"] == 1e-4
    assert app.queue.wait_idle(180)
    # a race, not a queue: the three trained side by side, taking turns, so every one had its first point (an epoch,
    # or the probe's solution) before any of them finished
    events = list(app.hub._history)
    first_point = {j["id"]: next(i for i, e in enumerate(events) if e.get("job") == j["id"]
                                 and e["type"] in ("epoch", "solved")) for j in queued}
    first_end = min(i for i, e in enumerate(events) if e["type"] == "job" and e["state"] == "done")
    assert max(first_point.values()) < first_end
    waits = [e for e in events if e["type"] == "wait"]
    assert {e["job"] for e in waits} >= {queued[0]["id"], queued[2]["id"]}
    setting = client.get("/api/setting", params={"frozen": 0, "budget": 8, "lr": "1e-4"}).json()
    assert all(e["record"] is not None for e in setting["entrants"])
    full = setting["entrants"][2]["record"]
    assert full["lr"] == 1e-4 and full["curve"][0]["epoch"] == 0  # starts from the probe's head (epoch 0)
    # every epoch of the loop-trained runs was streamed as it ended, with the early-stopping state
    events = list(app.hub._history)
    for job in queued:
        epochs = [e for e in events if e["type"] == "epoch" and e["job"] == job["id"]]
        if job["strategy"] == "probe":
            assert not epochs  # solved in closed form
            continue
        stored = [c for c in client.get(f"/api/runs/{job['key']}").json()["curve"]]
        assert [e["epoch"] for e in epochs][-len(stored):] == [c["epoch"] for c in stored]
        validated = [e for e in epochs if e["val_acc"] is not None]
        assert validated and all(e["best_epoch"] is not None and 0 <= e["wait"] <= e["patience"] for e in validated)
    # the same setting again is instant: nothing queued; the default learning rate is another setting
    again = client.post("/api/train", json={"frozen": 0, "budget": 8, "lr": "1e-4"})
    assert again.status_code == 200 and again.json()["queued"] == []
    other = client.post("/api/train", json={"frozen": 0, "budget": 8}).json()["queued"]
    assert [j["strategy"] for j in other] == ["full"]
    assert app.queue.wait_idle(180)
    with ResultStore(app.session.folder / "results.sqlite") as store:
        records = store.records()
    assert len(records) == len({r["key"] for r in records}) == 4
    # each run's seconds are its own compute, the figure its live events counted up to (waits left out)
    for job in queued:
        if job["strategy"] == "probe":
            continue
        stored = next(r for r in records if r["key"] == job["key"])["seconds"]
        scored = next(e for e in events if e.get("job") == job["id"] and e.get("phase") == "scoring")
        live = [e["compute"] for e in events if e.get("job") == job["id"] and e.get("compute") is not None
                and e["id"] <= scored["id"]]
        assert abs(scored["compute"] - stored) < 1.0 and max(live) <= scored["compute"] + 1e-6


def test_a_page_reads_the_event_stream_over_http(lab):
    client, app = lab
    client.post("/api/train", json={"frozen": 2, "budget": 4, "only": "frozen"})
    assert app.queue.wait_idle(60)
    seen = []
    with client.stream("GET", "/api/events?after=0") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
            if any(e["type"] == "job" and e["state"] == "done" for e in seen):
                break
    assert [e["state"] for e in seen if e["type"] == "job"][:3] == ["queued", "running", "done"]
    assert next(e for e in seen if e["type"] == "run")["record"]["strategy"] == "probe"


def test_two_watchers_of_one_run_see_the_same_events():
    hub = EventHub()

    async def watch():
        (a, _), (b, _) = hub.subscribe(), hub.subscribe()
        threading.Thread(target=lambda: [hub.publish({"type": "epoch", "epoch": i}) for i in range(5)]).start()
        got_a = [await asyncio.wait_for(a[1].get(), 5) for _ in range(5)]
        got_b = [await asyncio.wait_for(b[1].get(), 5) for _ in range(5)]
        late, missed = hub.subscribe(after=2)  # a page opened mid-run catches up from its last event
        return got_a, got_b, missed, hub.watchers

    got_a, got_b, missed, watchers = asyncio.run(watch())
    assert got_a == got_b and [e["epoch"] for e in got_a] == list(range(5))
    assert [e["id"] for e in missed] == [3, 4, 5] and watchers == 3


def test_cancel_a_queued_and_a_running_job(toy_csv, tmp_path):
    app = create_app(open_lab(toy_csv, tmp_path / "lab", epochs=400, patience=400), poll_seconds=0.1)
    with TestClient(app) as client:
        first = client.post("/api/train", json={"frozen": 0, "budget": 8}).json()["queued"]
        later = client.post("/api/train", json={"frozen": 1, "budget": 8, "only": "finetune"}).json()["queued"]
        scratch, _, full = first
        wait_for(lambda: app.queue.get(scratch["id"]).state == "running" and app.queue.get(scratch["id"]).live)
        assert app.queue.get(later[0]["id"]).state == "queued"  # three train at once: the fourth waits
        assert client.post(f"/api/jobs/{later[0]['id']}/cancel").json()["state"] == "cancelled"
        client.post(f"/api/jobs/{scratch['id']}/cancel")
        client.post(f"/api/jobs/{full['id']}/cancel")
        wait_for(lambda: app.queue.get(scratch["id"]).state == "cancelled")
        assert app.queue.wait_idle(60)
        states = {j["strategy"]: j["state"] for j in client.get("/api/jobs").json()["jobs"]}
        assert states == {"scratch-small": "cancelled", "probe": "done", "full": "cancelled",
                          later[0]["strategy"]: "cancelled"}
        assert client.post(f"/api/jobs/{full['id']}/cancel").status_code == 409
        keys = {r["key"] for r in client.get("/api/runs").json()["runs"]}
        assert scratch["key"] not in keys and full["key"] not in keys  # nothing of a cancelled run is stored


def test_pause_holds_the_race_resume_plays_on_and_reset_cancels_it(toy_csv, tmp_path):
    app = create_app(open_lab(toy_csv, tmp_path / "lab", epochs=60), poll_seconds=0.1)
    with TestClient(app) as client:
        queued = client.post("/api/train", json={"frozen": 0, "budget": 8}).json()["queued"]
        scratch = queued[0]
        wait_for(lambda: any(e["type"] == "epoch" and e["job"] == scratch["id"] for e in app.hub._history))
        assert client.post("/api/race/pause").json() == {"paused": True}
        time.sleep(1.0)  # the running runs reach their hand-over and hold there
        held = [e["id"] for e in app.hub._history if e["type"] == "epoch"]
        time.sleep(1.5)
        assert [e["id"] for e in app.hub._history if e["type"] == "epoch"] == held
        assert client.get("/api/setting", params={"frozen": 0, "budget": 8}).json()["paused"] is True
        assert client.post("/api/race/resume").json() == {"paused": False}
        wait_for(lambda: [e["id"] for e in app.hub._history if e["type"] == "epoch"] != held)
        reset = client.post("/api/race/reset").json()
        assert reset["paused"] is False
        assert app.queue.wait_idle(60)
        assert all(app.queue.get(j["id"]).state in ("cancelled", "done") for j in queued)
        assert client.post("/api/race/jump").status_code == 404


def test_early_stopping_and_the_wider_learning_rates_reach_the_fine_tune_only(lab):
    client, app = lab
    info = client.get("/api/lab").json()
    assert max(info["lr_choices"]) == 0.01 and info["patience_choices"] and info["chance"] > 0
    assert info["settings"]["train"]["min_steps"] == 30 and info["settings"]["scratch"] == "scratch-small"
    assert info["colors"]["probe"] != info["colors"]["full"]
    client.post("/api/train", json={"frozen": 0, "budget": 8, "lr": "0.01", "patience": 3})
    assert app.queue.wait_idle(180)
    entrants = client.get("/api/setting", params={"frozen": 0, "budget": 8, "lr": "0.01", "patience": 3}).json()
    full = entrants["entrants"][2]["record"]
    assert full["lr"] == 0.01 and full["stages"][-1]["monitor"] == "val_acc" and full["stages"][-1]["patience"] == 3
    scratch = entrants["entrants"][0]["record"]
    assert scratch["stages"][-1].get("patience") != 3 or scratch["config"]["patience"] is None
    bad = client.get("/api/setting", params={"frozen": 0, "budget": 8, "patience": 4})
    assert bad.status_code == 422 and "patience must be 'off' or one of" in bad.json()["error"]


def test_a_restarted_lab_finishes_the_job_it_was_running(toy_csv, tmp_path):
    import sqlite3

    folder = tmp_path / "lab"
    crashed = create_app(open_lab(toy_csv, folder), poll_seconds=0.1)
    crashed.queue.close()  # its worker is gone: the job below stays where a killed server leaves it
    job = crashed.queue.submit("scratch", 8, None)
    with sqlite3.connect(folder / "lab.sqlite") as db:
        db.execute("UPDATE jobs SET state = 'running', started = 1 WHERE id = ?", (job.id,))
    assert not ResultStore(folder / "results.sqlite").records()  # nothing half-done was stored
    again = create_app(open_lab(toy_csv, folder), poll_seconds=0.1)
    with TestClient(again) as client:
        assert again.queue.wait_idle(180)
        assert client.get(f"/api/jobs/{job.id}").json()["state"] == "done"
        runs = client.get("/api/runs").json()["runs"]
    assert [r["key"] for r in runs] == [job.key]


def test_a_race_folder_is_the_labs_store_and_its_runs_are_followed_live(tmp_path):
    task = toy_task()
    folder = tmp_path / "race"
    csv_path = tmp_path / "toy.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows((t, task.classes[y]) for t, y in zip(task.inputs, task.labels))
    spec = _with_data(toy_spec(budgets=(4,), seeds=1, strategies=("scratch", "probe")), csv_path)
    run_race(spec, folder, backbone=tiny, progress=False)
    app = create_app(LabSession.open(str(folder), backbone_factory=tiny), poll_seconds=0.1)
    with TestClient(app) as client:
        all_frozen = len(client.get("/api/lab").json()["blocks"])
        setting = client.get("/api/setting", params={"frozen": all_frozen, "budget": 4}).json()
        assert [e["record"] is not None for e in setting["entrants"]] == [True, True]  # the race's runs, not retrained
        curves = client.get("/api/curves").json()
        assert {r["strategy"] for r in curves["rows"]} == {"scratch", "probe"} and curves["verdict"]
        # `compare` adds a budget while the lab is open: the lab hears of it
        before = app.hub._history[-1]["id"] if app.hub._history else 0
        run_race(_with_data(toy_spec(budgets=(4, 8), seeds=1, strategies=("scratch", "probe")), csv_path),
                 folder, backbone=tiny, progress=False)
        wait_for(lambda: any(e["type"] == "store" and e["id"] > before for e in app.hub._history), 10)
        assert {r["budget"] for r in client.get("/api/curves").json()["rows"]} == {4, 8}


def _with_data(spec, path):
    spec.data = str(path)
    return spec


@pytest.mark.parametrize(("path", "status", "words"), [
    ("/api/setting?frozen=99&budget=8", 422, "frozen blocks must be a whole number from 0 to"),
    ("/api/setting?frozen=0&budget=7", 422, "labels per class must be one of"),
    ("/api/setting?frozen=0&budget=8&lr=fast", 422, "learning rate must be"),
    ("/api/setting?frozen=0&budget=8&mode=x", 422, "unknown field"),
    ("/api/runs/zzz", 400, "is not a run key"),
    ("/api/runs/0123456789abcdef0123", 404, "There is no run"),
    ("/api/jobs/999", 404, "There is no job 999"),
    ("/api/jobs/x1", 400, "is not a job number"),
    ("/assets/nothing.js", 404, "There is no asset"),
    ("/nowhere", 404, "There is nothing at /nowhere"),
])
def test_bad_requests_get_a_4xx_and_a_sentence(lab, path, status, words):
    client, _ = lab
    response = client.get(path)
    assert response.status_code == status and words.lower() in response.json()["error"].lower()


@pytest.mark.parametrize("raw", ["/assets/../app.py", "/assets/%2e%2e/app.py", "/assets/..%2fapp.py",
                                 "/assets/vendor%2Fuplot%2FLICENSE", "/assets/%5c..%5capp.py",
                                 "/assets//etc/passwd", "/assets/\\..\\app.py", "/assets/lab.js%00.png"])
def test_path_tricks_are_refused_on_the_wire(toy_csv, tmp_path, raw):
    """Raw request lines (no client normalisation) against the real server: refused, nothing served."""
    import socket

    import uvicorn

    app = create_app(open_lab(toy_csv, tmp_path / "lab"), poll_seconds=0.1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 20)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("GET", raw, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status in (400, 404) and "error" in json.loads(body)
        assert "import" not in body and "MIT" not in body and "root:" not in body
        ok = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        ok.request("GET", "/assets/vendor/uplot/LICENSE")
        assert "MIT License" in ok.getresponse().read().decode()  # the same file by its proper name is served
    finally:
        server.should_exit = True
        thread.join(20)


def test_the_lab_folder_is_named_after_the_data_and_reused(toy_csv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = LabSession.open(str(toy_csv), train_options=FAST, backbone_factory=tiny, test_limit=40)
    assert first.folder == Path("runs") / "lab-toy-minilm-l6"
    again = LabSession.open(str(first.folder), backbone_factory=tiny)
    assert again.spec.test_limit == 40 and again.scratch == "scratch-small"
    assert again.spec.train_options == {"min_steps": 30, **FAST}  # the lab's own defaults, then what was given
    assert again.key("probe", 8) == first.key("probe", 8)
    assert np.array_equal(again.data.selection.labels, first.data.selection.labels)


def test_turns_alternate_epoch_by_epoch_and_leave_waits_out_of_each_threads_compute():
    from headstart.lab.turns import Turns
    from headstart.train.clock import compute_time

    turns, order, computed = Turns(), [], {}

    def run(job: int) -> None:
        turns.enter(job)
        start = compute_time()
        for epoch in range(3):
            time.sleep(0.1)  # this run's compute for one epoch
            order.append((job, epoch))
            turns.hand_over(job)
        computed[job] = compute_time() - start
        turns.leave(job)

    threads = [threading.Thread(target=run, args=(j,)) for j in (1, 2)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    for t in threads:
        t.join(10)
    assert [job for job, _ in order] == [1, 2, 1, 2, 1, 2]
    assert all(0.28 < c < 0.45 for c in computed.values())  # its own three epochs, not the other's three
