"""Choosing on tiny data: does cross-validation within the labels pick what a large selection split picks?

    python benchmarks/choosing.py [--datasets a,b] [--table]

Each named example is subsampled to 10, 20 and 40 labels per class (3 draws each): a user's whole
labelled dataset. Every draw is raced twice on the same entries (``all`` of its labels, 3 seeds):
once choosing by 5-fold cross-validation within each run's labels (``choose="cv"``, what the race
does on data this small) and once on a selection part of a fifth of the draw (``choose="selection"``,
the other way, whose runs learn from four fifths). Both races are scored on 1,000 examples of the
example that are not in the draw (as many of every class, as the draw; the same for both): a large
selection split that neither race sees. The choice it makes among the models fitted on all the draw's labels (the entry
with the best mean accuracy on it) is the reference; the table gives how often each way of choosing
agrees with it, and the accuracy its pick gives up on those 1,000 examples (regret), per example and size.

Text races MiniLM's closed forms (zero-shot, prototype with and without the names' prior, probe);
images race the probe and prototype on MobileNetV2 and EfficientNet-Lite0 at 64 px (side by side, so
the choice spans backbones). Races run in ``~/.cache/headstart/bench-choosing/`` and resume there;
per-run rows go to ``benchmarks/results/choosing.jsonl`` as each race ends.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402

from headstart.data import load_task  # noqa: E402
from headstart.fetch import cache_dir  # noqa: E402
from headstart.race import RaceSpec, run_race  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "choosing.jsonl"
DATASETS = ("rotten-tomatoes", "vader-tweets", "20newsgroups", "digits", "mnist-5k", "fashion-mnist")
SIZES = (10, 20, 40)
DRAWS = 3
SEEDS = 3
REFERENCE = 1000
MODES = ("cv", "selection")
TEXT = dict(backbone="minilm-l6", strategies=["zero-shot", "prototype", "prototype[prior=names]", "probe"])
IMAGE = dict(backbone="mobilenetv2", strategies=["prototype", "probe"],
             backbones=["mobilenetv2[image_size=64]", "efficientnet-lite0[image_size=64]"])


def _draw(task, per_class: int, draw: int) -> tuple[np.ndarray, np.ndarray]:
    """(the user's data: ``per_class`` of every class; the reference: ``REFERENCE`` others, as many of every class,
    so it comes from the same class balance as the user's data)."""
    rng = np.random.default_rng([draw, per_class, 7])
    mine, reference = [], []
    for c in range(len(task.classes)):
        order = rng.permutation(np.flatnonzero(task.labels == c))
        mine.append(order[:per_class])
        reference.append(order[per_class: per_class + REFERENCE // len(task.classes)])
    return np.sort(np.concatenate(mine)), np.sort(np.concatenate(reference))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--table", action="store_true", help="only rebuild BENCHMARKS.md's section from the rows")
    args = ap.parse_args()
    if args.table:
        return write()
    done = {(r["data"], r["per_class"], r["draw"], r["mode"]) for r in read_jsonl(RESULTS)}
    for per_class in SIZES:
        for data in args.datasets.split(","):
            task = None
            for draw in range(DRAWS):
                for mode in MODES:
                    if (data, per_class, draw, mode) in done:
                        continue
                    task = task or load_task(data)
                    mine, reference = _draw(task, per_class, draw)
                    setting = TEXT if task.modality == "text" else IMAGE
                    spec = RaceSpec(data=f"{data}-{per_class}x{draw}", budgets=[None], seeds=SEEDS, choose=mode,
                                    **setting)
                    out = cache_dir() / "bench-choosing" / f"{data}-{per_class}-{draw}-{mode}"
                    records = run_race(spec, out, task=task.subset(mine), test_task=task.subset(reference),
                                       progress=False)
                    merge_jsonl(RESULTS, [{"key": f"{data}|{per_class}|{draw}|{mode}|{r['strategy']}|{r['seed']}",
                                           "data": data, "per_class": per_class, "draw": draw, "mode": mode,
                                           "entry": r["strategy"], "seed": r["seed"], "sel_acc": r["sel_acc"],
                                           "reference_acc": r["test_acc"], "n_train": r["n_train"],
                                           "n_val": r["n_val"], "n_selection": r["n_selection"],
                                           "seconds": r["seconds"] + (r.get("cv") or {}).get("seconds", 0.0)}
                                          for r in records], order=lambda r: r["key"])
                    print(data, per_class, draw, mode, f"{len(records)} runs", flush=True)
    write()


def _mean_by(rows: list[dict], key: str) -> dict[str, float]:
    by = defaultdict(list)
    for r in rows:
        by[r["entry"]].append(r[key])
    return {e: statistics.mean(v) for e, v in by.items()}


def table(rows: list[dict]) -> str:
    cells: dict[tuple[str, int, str], list[tuple[bool, float]]] = defaultdict(list)
    for data in DATASETS:
        for per_class in SIZES:
            for draw in range(DRAWS):
                both = {m: [r for r in rows if (r["data"], r["per_class"], r["draw"], r["mode"]) ==
                            (data, per_class, draw, m)] for m in MODES}
                if not all(both.values()):
                    continue
                # the truth: each entry's models fitted on all the draw's labels (the cross-validating race's)
                reference = _mean_by(both["cv"], "reference_acc")
                best = max(sorted(reference), key=reference.get)
                for mode in MODES:
                    chosen = _mean_by(both[mode], "sel_acc")
                    pick = max(sorted(chosen), key=chosen.get)
                    cells[(data, per_class, mode)].append((pick == best, reference[best] - reference[pick]))
    lines = ["| example | labels/class | draws | cross-validation agrees | regret | a fifth as selection agrees | "
             "regret |", "|---|---|---|---|---|---|---|"]
    total = {m: [] for m in MODES}
    for data in DATASETS:
        for per_class in SIZES:
            cv, sel = cells.get((data, per_class, "cv")), cells.get((data, per_class, "selection"))
            if not cv or not sel:
                continue
            total["cv"] += cv
            total["selection"] += sel

            def agree(v):
                return f"{sum(a for a, _ in v)}/{len(v)}"

            def regret(v):
                return f"{statistics.mean(r for _, r in v):.3f}"

            lines.append(f"| {data} | {per_class} | {len(cv)} | {agree(cv)} | {regret(cv)} | {agree(sel)} | "
                         f"{regret(sel)} |")
    if total["cv"]:
        lines.append(f"| **all** | | {len(total['cv'])} | **{sum(a for a, _ in total['cv'])}/{len(total['cv'])}** | "
                     f"{statistics.mean(r for _, r in total['cv']):.3f} | "
                     f"**{sum(a for a, _ in total['selection'])}/{len(total['selection'])}** | "
                     f"{statistics.mean(r for _, r in total['selection']):.3f} |")
    total = len(DATASETS) * len(SIZES) * DRAWS
    raced = len(total_draws(cells))
    status = "" if raced >= total else (f"**{raced} of {total} draws raced so far** (the rest resume with "
                                        "`python benchmarks/choosing.py`).\n\n")
    return (status + "Each example subsampled to n labels per class (the user's whole dataset; 3 draws), raced at "
            "`all` with "
            "3 seeds twice: choosing by 5-fold cross-validation within each run's labels, and on a selection part "
            f"of a fifth of the draw. The reference is the choice made on {REFERENCE:,} other examples of the example "
            "(as many of every class, as the draw; unseen by either race) among the models fitted on all the draw's "
            "labels: *agrees* counts the "
            "draws where a way of choosing picked the same entry, *regret* is the accuracy on those examples that its "
            "pick gives up against the reference's (0 when it agrees; the same all-label models for both ways, so it "
            "is the cost of the choice alone, not of the fifth's fewer training labels). Text: `zero-shot`, "
            "`prototype`, `prototype[prior=names]`, `probe` on MiniLM. Images: `probe` and `prototype` on MobileNetV2 "
            "and "
            "EfficientNet-Lite0 at 64 px, side by side.\n\n" + "\n".join(lines)
            + "\n\nRows: `benchmarks/results/choosing.jsonl` (`python benchmarks/choosing.py` resumes them).")


def total_draws(cells: dict) -> list:
    return [v for (_, _, mode), vs in cells.items() if mode == "cv" for v in vs]


def write() -> None:
    write_section("choosing", "Choosing on tiny data: cross-validation within the labels vs a large selection split",
                  table(read_jsonl(RESULTS)))


if __name__ == "__main__":
    main()
