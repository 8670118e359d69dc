"""The parameter-efficient family: learning rates, then every method beside probe, lora and full.

    python benchmarks/peft_family.py --sweep          # rates on rotten-tomatoes at 32/class (selection accuracy)
    python benchmarks/peft_family.py                  # the table: rotten-tomatoes and vader-tweets at 8 and 128/class
    python benchmarks/peft_family.py --images         # mobilenetv2 on mnist-5k at 8 and 32/class (64 px)
    python benchmarks/peft_family.py --table          # only rebuild the section

Every run is one race run on the peers benchmark's draws, seeds, selection and test examples
(MiniLM-L6 at 64 tokens, ``benchmarks/peers.py``), in a fresh process of its own so that its peak
resident memory is its own; the run's record, its saved model's size on disk and that peak are one row
of ``benchmarks/results/peft.jsonl``. Runs are stored under ``~/.cache/headstart/bench-peft/`` and the
file is read first, so an interrupted grid resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "peft.jsonl"
METHODS = ["lora", "dora", "vera", "adapter", "ia3", "ln-tuning", "bitfit", "prompt", "prefix"]
BESIDE = ["probe", "lora", "full"]
RATES = {"lora": (2e-4, 5e-4, 1e-3, 2e-3), "dora": (2e-4, 5e-4, 1e-3, 2e-3),
         "adapter": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2), "ia3": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
         "ln-tuning": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2), "bitfit": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
         "prompt": (3e-3, 1e-2, 3e-2, 1e-1), "vera": (1e-3, 4e-3, 1e-2, 3e-2, 1e-1),
         "prefix": (1e-3, 3e-3, 1e-2, 3e-2)}
# prompt and prefix tuning need a token sequence, vera Linear layers
CONV = ["lora", "dora", "adapter", "ia3", "ln-tuning", "bitfit"]
SEEDS = 3
SELECTION = 1000  # selection examples per run (the peers benchmark's limit)
KEEP = ("strategy", "budget", "seed", "sel_acc", "test_acc", "seconds", "trainable_params", "n_train", "n_val",
        "n_test", "epochs", "delta_relative", "forgetting")


def _key(data: str, spec: str, budget: int, seed: int, lr: float | None) -> str:
    return f"{data}|{spec}|{budget}|{seed}|{'default' if lr is None else f'{lr:g}'}"


def child(data: str, spec: str, budget: int, seed: int, lr: float | None) -> dict:
    """In this process: one run of the race (its store resumes it), its saved size, this process's peak memory."""
    from dataclasses import asdict

    from peers import MAX_LENGTH, TEST_LIMIT, _Remaining

    from headstart.data import load_task
    from headstart.fetch import cache_dir
    from headstart.race import RaceSpec, run_race
    from headstart.strategies import base_name

    options = {} if lr is None else {f"{base_name(spec)}.lr": lr}
    image = data == "mnist-5k"
    sweep = lr is not None  # a rate's runs need neither the forgetting probe nor the saved size (the grid has them)
    race = RaceSpec(data, "mobilenetv2" if image else "minilm-l6", strategies=[spec], budgets=[budget],
                    seeds=seed + 1, test_limit=TEST_LIMIT, train_options=options,
                    backbone_options={"image_size": 64} if image else {"max_length": MAX_LENGTH},
                    **({"reference": "none"} if sweep else {}))
    race = _Remaining(**{**asdict(race), "only": tuple(r for r in race.runs() if r.seed == seed)})  # one run
    out = cache_dir() / "bench-peft" / data / (f"lr={lr:g}" if lr is not None else "defaults")
    task = load_task(data)
    (record,) = [r for r in run_race(race, out, task=task, progress=False) if r["seed"] == seed]
    size = None
    if not sweep:
        with tempfile.TemporaryDirectory() as tmp:
            size = _saved_size(race, task, record["strategy"], Path(tmp))
    return {**{k: record.get(k) for k in KEEP}, "saved_bytes": size,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _saved_size(race, task, strategy: str, folder: Path) -> int:
    """Bytes on disk of the method's saved model (what it keeps depends on the method and backbone, not on the
    labels: the race keeps no model, so one epoch on two labels per class is fitted and saved to measure it)."""
    from headstart import Adapter
    from headstart.data import budget_indices, make_splits

    pool = make_splits(task, seed=0).pool
    clf = Adapter(race.backbone, strategy, epochs=1, backbone_options=race.backbone_options, feature_cache=False)
    clf.fit(task.subset(budget_indices(task, pool, 2, seed=0)))
    clf.save(folder)
    return sum(f.stat().st_size for f in folder.iterdir())


def _grid(args) -> list[tuple[str, str, int, int, float | None]]:
    if args.sweep:
        return [("rotten-tomatoes", m, 32, s, lr) for m in METHODS for lr in RATES[m] for s in range(SEEDS)]
    if args.images:
        return [("mnist-5k", m, b, s, None) for b in (8, 32) for m in ["probe", *CONV, "full"] for s in range(SEEDS)]
    return [(d, m, b, s, None) for b in (8, 128) for d in ("rotten-tomatoes", "vader-tweets")
            for m in dict.fromkeys(["probe", *METHODS, "full"]) for s in range(SEEDS)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", action="store_true", help="the learning-rate sweep")
    ap.add_argument("--images", action="store_true", help="the conv-net grid on mnist-5k")
    ap.add_argument("--table", action="store_true", help="only rebuild BENCHMARKS.md's section from the rows")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        data, spec, budget, seed, lr = json.loads(args.child)
        print(json.dumps(child(data, spec, budget, seed, lr)))
        return
    if not args.table:
        done = {r["key"] for r in read_jsonl(RESULTS)}
        for data, spec, budget, seed, lr in _grid(args):
            key = _key(data, spec, budget, seed, lr)
            if key in done:
                continue
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps([data, spec, budget, seed, lr])],
                                 capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{key} failed:\n{out.stderr[-3000:]}")
            row = {"key": key, "data": data, "lr": lr, **json.loads(out.stdout.strip().splitlines()[-1])}
            merge_jsonl(RESULTS, [row], order=lambda r: r["key"])
            print(key, {k: round(v, 3) for k, v in row.items() if isinstance(v, float) and k != "lr"}, flush=True)
    write()


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.mean(values) if values else math.nan


def _chosen_rates(sweep: list[dict]) -> list[str]:
    """Per method whose sweep is complete: the rate with the best mean selection accuracy, unless the shipped
    rate is within the race's noise of it (the binomial error of a difference on the selection examples, which
    every seed shares, so averaging seeds does not shrink it): a default does not move on noise."""
    from headstart.race.analysis import _noise
    from headstart.strategies import create_strategy

    lines = []
    for m in METHODS:
        means = {lr: [r["sel_acc"] for r in sweep if r["strategy"] == m and r["lr"] == lr] for lr in RATES[m]}
        if any(len(v) < SEEDS for v in means.values()):
            continue
        mean = {lr: statistics.mean(v) for lr, v in means.items()}
        best = max(RATES[m], key=mean.get)
        shipped = create_strategy(m).default_lr
        verdict = f"ships {shipped:g}, best {best:g}"
        if shipped in mean:  # one pair of means: the binomial error alone
            noise = _noise([mean[best]], [mean[shipped]], SELECTION)
            if shipped == best:
                verdict = f"ships {shipped:g}"
            elif mean[best] - mean[shipped] <= noise:
                verdict = f"ships {shipped:g}, within noise (±{noise:.3f}) of the best, {best:g}: kept"
        edge = "; the best is the sweep's highest rate: try higher" if best == max(RATES[m]) else \
            "; the best is the sweep's lowest rate: try lower" if best == min(RATES[m]) else ""
        beside = f", {mean[shipped]:.3f} at {shipped:g}" if shipped in mean and shipped != best else ""
        lines.append(f"- `{m}`: {verdict} (selection {mean[best]:.3f} at {best:g}{beside}{edge})")
    return lines


def table(rows: list[dict]) -> str:
    if not rows:
        return "Not measured yet (`python benchmarks/peft_family.py --sweep`, then `python benchmarks/peft_family.py`)."
    parts = []
    sweep = [r for r in rows if r["lr"] is not None]
    if sweep:
        lines = ["| method | rate | selection acc (3 seeds) | test acc |", "|---|---|---|---|"]
        for m in METHODS:
            for lr in RATES[m]:
                rs = [r for r in sweep if r["strategy"] == m and r["lr"] == lr]
                if rs:
                    lines.append(f"| `{m}` | {lr:g} | {_mean(rs, 'sel_acc'):.3f} (n={len(rs)}) | "
                                 f"{_mean(rs, 'test_acc'):.3f} |")
        chosen = _chosen_rates(sweep)
        parts.append("**Rates** (rotten-tomatoes, 32 labels per class)\n\n" + "\n".join(lines)
                     + ("\n\nEach method's default is the rate with the best mean selection accuracy over the "
                        "seeds, unless the shipped rate is within the noise of it (a method is listed once all its "
                        "rates are in):\n\n" + "\n".join(chosen)
                        if chosen else ""))
    grid = [r for r in rows if r["lr"] is None]
    for data in dict.fromkeys(r["data"] for r in grid):
        lines = ["| method | labels/class | test acc | trainable | saved MB | peak MB | s per run |",
                 "|---|---|---|---|---|---|---|"]
        mine = [r for r in grid if r["data"] == data]
        for budget in sorted({r["budget"] for r in mine}):
            for m in dict.fromkeys(r["strategy"] for r in mine):
                rs = [r for r in mine if r["strategy"] == m and r["budget"] == budget]
                if rs:
                    acc = [r["test_acc"] for r in rs]
                    spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
                    lines.append(f"| `{m}` | {budget} | {statistics.mean(acc):.3f} ± {spread:.3f} | "
                                 f"{max(r['trainable_params'] for r in rs):,} | {_mean(rs, 'saved_bytes') / 1e6:.2f} | "
                                 f"{_mean(rs, 'peak_mb'):.0f} | {_mean(rs, 'seconds'):.0f} |")
        parts.append(f"**{data}**\n\n" + "\n".join(lines) + _level_with_full(mine))
    return ("Each run in a process of its own (peak resident memory is that run's), on the peers benchmark's draws "
            "and held-out examples.\n\n" + "\n\n".join(parts)
            + "\n\nRows: `benchmarks/results/peft.jsonl` (`python benchmarks/peft_family.py` resumes them).")


def _level_with_full(rows: list[dict], budget: int = 128) -> str:
    """Which methods are level with ``full`` at ``budget`` per class: selection accuracy paired by seed, the race's
    rule (``_targets``: level is not more than 2 noise units behind)."""
    from _targets import by_seed, compare, state

    full = by_seed(rows, "full", budget, "sel_acc")
    if not full:
        return ""
    verdicts: dict[str, list[str]] = {"ahead": [], "level": [], "behind": []}
    for m in dict.fromkeys(r["strategy"] for r in rows if r["budget"] == budget and r["strategy"] != "full"):
        cmp = compare(by_seed(rows, m, budget, "sel_acc"), full, SELECTION)
        if cmp is not None:
            diff, noise, k = cmp
            partial = "" if k == SEEDS else f", {k} of {SEEDS} seeds"
            verdicts[state(diff, noise)].append(f"`{m}` ({diff:+.3f} ± {noise:.3f}{partial})")
    said = [f"{where}: {', '.join(names)}" for where, names in zip(("ahead of it", "level with it", "behind it"),
                                                                   verdicts.values()) if names]
    return (f"\n\nAgainst `full` at {budget}/class (selection accuracy paired by seed; more than 2 noise units "
            f"apart is ahead or behind): " + "; ".join(said) + ".") if said else ""


def write() -> None:
    write_section("peft", "The parameter-efficient family: rates, accuracy, size and memory",
                  table(read_jsonl(RESULTS)))


if __name__ == "__main__":
    main()
