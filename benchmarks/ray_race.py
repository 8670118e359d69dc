"""The same race on the local executor and on a 2-worker local Ray instance: wall-clock ratio, overhead per run.

    unshare --net -- sh -c 'ip link set lo up && python benchmarks/ray_race.py'

(the namespace keeps Ray's servers on loopback: Ray binds every interface.) rotten-tomatoes, minilm-l6,
scratch-small, probe and partial:2 at 8 and 32 labels/class, 2 seeds, scored on 200 + 200 examples:
12 runs, each in a fresh results folder, after one untimed pass that fills the feature cache. Local runs
one after another with 2 torch threads (and with 1, for the per-run cost); Ray runs two at a time with
1 thread each. The numbers must agree run for run between the 1-thread local race and Ray (same seeds,
same thread count), and the benchmark says so. Rows append to ``benchmarks/results/ray_race.jsonl``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, machine, write_section  # noqa: E402

from headstart.race import RaceSpec, prepare_race, run_race  # noqa: E402
from headstart.race.executors import LocalExecutor, RayExecutor  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ray_race.jsonl"


def spec() -> RaceSpec:
    return RaceSpec("rotten-tomatoes", "minilm-l6", strategies=["scratch-small", "probe", "partial:2"],
                    budgets=[8, 32], seeds=2, test_limit=200, train_options={"precision": "fp32"})


def timed(executor, label: str) -> tuple[dict, list[dict]]:
    with tempfile.TemporaryDirectory() as out:
        data = prepare_race(spec())
        tic = time.perf_counter()
        records = run_race(spec(), out, data=data, progress=False, executor=executor)
        wall = time.perf_counter() - tic
    return {"executor": label, "wall_s": wall, "runs": len(records),
            "run_seconds": sum(r["seconds"] for r in records)}, records


def main() -> None:
    timed(LocalExecutor(threads=2), "warm-up")  # fills the feature cache; not reported
    ray = RayExecutor(threads=1, num_cpus=2)
    rows, numbers = [], {}
    executors = ((LocalExecutor(threads=2), "local, 2 threads"), (LocalExecutor(threads=1), "local, 1 thread"),
                 (ray, "ray, 2 workers × 1 thread"))
    for executor, label in executors:
        row, records = timed(executor, label)
        numbers[label] = {(r["strategy"], r["budget"], r["seed"]): r["test_acc"] for r in records}
        rows.append(row)
    ray.shutdown()
    same = numbers["local, 1 thread"] == numbers["ray, 2 workers × 1 thread"]
    stamp = {"date": dt.date.today().isoformat(), "machine": machine(), "same_numbers": same}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({**stamp, **row}) + "\n")
    write_section("ray", "The race on Ray: a 2-worker local instance vs the local executor", section())


def section() -> str:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    lines = ["| date | executor | wall-clock | Σ run seconds | runs | overhead per run "
             "| same numbers as local, 1 thread |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        workers = 2 if r["executor"].startswith("ray") else 1
        overhead = (r["wall_s"] - r["run_seconds"] / workers) / r["runs"]
        same = ("yes" if r["same_numbers"] else "NO") if workers == 2 else "–"
        lines.append(f"| {r['date']} | {r['executor']} | {r['wall_s']:.0f} s | {r['run_seconds']:.0f} s | "
                     f"{r['runs']} | {overhead:.1f} s | {same} |")
    last = {r["executor"]: r for r in rows}
    ratio = last["local, 2 threads"]["wall_s"] / last["ray, 2 workers × 1 thread"]["wall_s"]
    return ("rotten-tomatoes, minilm-l6; scratch-small, probe and partial:2 at 8 and 32 labels/class, 2 seeds, "
            "scored on 200 + 200 examples (12 runs), feature cache warm, a fresh results folder per executor. "
            "*Overhead per run*: wall-clock minus the runs' own fit seconds spread over the workers, per run "
            "(scoring, loading the backbone, and for Ray scheduling and moving results). Ray's tasks run with "
            "1 torch thread each, so its numbers are compared with the 1-thread local race.\n\n"
            f"Latest: the local race takes {ratio:.2f}× Ray's wall-clock on 2 cores.\n\n" + "\n".join(lines)
            + "\n\nRows: `benchmarks/results/ray_race.jsonl`.")


if __name__ == "__main__":
    main()
