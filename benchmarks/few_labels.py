"""The first labels: 0 to 32 per class, for the strategies built for them, on identical draws.

    python benchmarks/few_labels.py [--only cheap|contrastive|setfit] [--datasets a,b] [--table]

MiniLM on the named text examples, the race's split (seed 0), scored on its test part; each seed is one
budget draw (``draw``: the race's, nested), shared by every strategy. Below 4 per class nothing is held
out and every label trains; from 4 a quarter validates (the probe's and prototype's closed forms use it
too). Rows are written as each fit ends (``benchmarks/results/few_labels.jsonl``), so an interrupted run
resumes where it stopped and a fresh clone rebuilds the table; the cheap strategies (closed forms on
cached features) run before the contrastive ones, which train the body, and SetFit (the ``bench`` extra:
``pip install -e ".[bench]"``) runs last, as the peers benchmark runs it, on every label of the same draw.
20newsgroups' body-training settings (``contrastive`` and SetFit) run only with ``--costly``: 20 classes of
128-token posts make every pass over a label about 0.3 s on 2 cores, so 40 contrastive epochs at 32/class take
about an hour and a half per fit, and the two settings and SetFit at every budget and seed about 20 CPU-hours
(``COSTLY``). A SetFit row the peers benchmark already holds is reused, not rerun, where its draw and its test examples
are provably the same as this benchmark's (the same pool and every test text equal, in order).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402

from headstart import Adapter  # noqa: E402
from headstart.data import draw, load_task, make_splits  # noqa: E402
from headstart.fetch import cache_dir  # noqa: E402
from headstart.train import FeatureCache  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "few_labels.jsonl"
DATASETS = ("rotten-tomatoes", "vader-tweets", "20newsgroups")
BUDGETS = (0, 1, 2, 4, 8, 32)
SEEDS = 3
#: (label, strategy, options, budgets it runs at, cheap: a closed form on cached features)
SETTINGS = [
    ("zero-shot", "zero-shot", {}, (0,), True),
    ("prototype", "prototype", {}, (1, 2, 4, 8, 32), True),
    ("prototype, prior=names", "prototype", {"prior": "names"}, BUDGETS, True),
    ("probe", "probe", {}, (1, 2, 4, 8, 32), True),
    ("contrastive, synthetic=8", "contrastive", {"synthetic": 8}, BUDGETS, False),
    ("contrastive", "contrastive", {}, (1, 2, 4, 8, 32), False),
]
#: (label, peer, budgets): tools a user would otherwise pick, run as ``benchmarks/peers.py`` runs them
PEER_SETTINGS = [("SetFit", "setfit", (1, 2, 4, 8, 32))]
#: examples whose body-training settings (contrastive, SetFit) run only with ``--costly``, and what they would take
COSTLY = {"20newsgroups": "about 20 CPU-hours on 2 cores"}


def _key(data: str, label: str, budget: int, seed: int) -> str:
    return f"{data}|{label}|{budget}|{seed}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("cheap", "contrastive", "setfit"), help="run one kind of setting only")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--costly", action="store_true", help="train the COSTLY examples' contrastive and SetFit too")
    ap.add_argument("--table", action="store_true", help="only rebuild BENCHMARKS.md's section from the rows")
    args = ap.parse_args()
    if args.table:
        return write()
    done = {r["key"] for r in read_jsonl(RESULTS)}
    cache = FeatureCache(cache_dir() / "features")
    datasets = args.datasets.split(",")
    trained = [d for d in datasets if d not in COSTLY or args.costly]  # where contrastive and SetFit run
    if args.only != "cheap":
        for data in sorted(set(datasets) - set(trained)):
            print(f"{data}: contrastive and SetFit are not trained without --costly ({COSTLY[data]})", flush=True)
    for cheap_pass in (True, False):
        if args.only and (args.only == "cheap") != cheap_pass or args.only == "setfit":
            continue
        for data in datasets if cheap_pass else trained:
            task = load_task(data)
            splits = make_splits(task, seed=0)
            test = task.subset(splits.test)
            for label, strategy, options, budgets, cheap in SETTINGS:
                if cheap != cheap_pass:
                    continue
                for budget in budgets:
                    # zero labels leave nothing to draw: one deterministic fit, whatever the seed
                    for seed in range(1 if budget == 0 and cheap else SEEDS):
                        key = _key(data, label, budget, seed)
                        if key not in done:
                            row = _fit(task, splits, test, strategy, options, budget, seed, cache)
                            merge_jsonl(RESULTS, [{"key": key, "data": data, "setting": label, **row}],
                                        order=lambda r: r["key"])
                            print(key, f"{row['test_acc']:.3f}", f"{row['fit_seconds']:.1f}s", flush=True)
    if args.only in (None, "setfit"):
        for data in trained:
            run_peers(data, done)
    write()


def run_peers(data: str, done: set[str]) -> None:
    """The peers' rows of ``data``: reused from ``peers.jsonl`` where provably the same, trained otherwise."""
    import numpy as np
    from peers import RESULTS as PEER_RESULTS
    from peers import RUNNERS, _minilm_dir

    task = load_task(data)
    splits = make_splits(task, seed=0)
    test = task.subset(splits.test)
    same, body = _same_examples(data, task, splits, test), str(_minilm_dir())
    committed = {(r["peer"], r["budget"], r["seed"]): r for r in read_jsonl(PEER_RESULTS)
                 if r["data"] == data and r.get("peer")} if same else {}
    for label, peer, budgets in PEER_SETTINGS:
        for budget in budgets:
            for seed in range(SEEDS):
                key = _key(data, label, budget, seed)
                if key in done:
                    continue
                tr, va = draw(task, splits, budget, seed=seed)
                index = np.concatenate([tr, va])  # a peer trains on every label of the draw, as in peers.py
                if (peer, budget, seed) in committed:
                    had = committed[(peer, budget, seed)]
                    row = {"test_acc": had["test_acc"], "fit_seconds": had["seconds"], "from": "peers.jsonl"}
                else:
                    tic = time.perf_counter()
                    pred = RUNNERS[peer](body, [task.inputs[i] for i in index], task.labels[index],
                                         list(test.inputs), seed, classes=task.classes)
                    row = {"test_acc": float((pred == test.labels).mean()), "fit_seconds": time.perf_counter() - tic}
                row = {"key": key, "data": data, "setting": label, "strategy": None, "peer": peer, "options": {},
                       "budget": budget, "seed": seed, "n_train": len(index), "n_val": 0, "n_test": len(test), **row}
                merge_jsonl(RESULTS, [row], order=lambda r: r["key"])
                print(key, f"{row['test_acc']:.3f}", f"{row['fit_seconds']:.1f}s", row.get("from", ""), flush=True)


def _same_examples(data: str, task, splits, test) -> bool:
    """Whether the peers benchmark drew from the same pool (so the same draws) and scored on the same test texts."""
    from peers import MAX_LENGTH, TEST_LIMIT

    from headstart.race import RaceSpec, prepare_race

    spec = RaceSpec(data, "minilm-l6", strategies=["probe"], budgets=[8], seeds=1, test_limit=TEST_LIMIT,
                    backbone_options={"max_length": MAX_LENGTH})
    prepared = prepare_race(spec, task)
    return (list(prepared.splits.pool) == list(splits.pool)
            and list(prepared.test.inputs) == list(test.inputs))


def write() -> None:
    """Rebuild the section from the committed rows (``--table``)."""
    write_section("few-labels", "The first labels: 0 to 32 per class, prototype, probe, contrastive",
                  table(read_jsonl(RESULTS)))


def _fit(task, splits, test, strategy, options, budget, seed, cache) -> dict:
    clf = Adapter("minilm-l6", strategy, strategy_options=options or None, feature_cache=cache, progress=False,
                  seed=seed)
    tic = time.perf_counter()
    if budget == 0:
        clf.fit(None, classes=task.classes)
        n_train = n_val = 0
    else:
        tr, va = draw(task, splits, budget, seed=seed)
        clf.fit(task.subset(tr), val=task.subset(va) if len(va) else None)
        n_train, n_val = len(tr), len(va)
    return {"strategy": strategy, "options": options, "budget": budget, "seed": seed, "n_train": n_train,
            "n_val": n_val, "test_acc": clf.score(test), "n_test": len(test),
            "fit_seconds": time.perf_counter() - tic}


def _reused(rows: list[dict]) -> str:
    """Which rows came from the peers benchmark (same draws, same test examples), for the section's text."""
    reused: dict[str, set[int]] = {}
    for r in rows:
        if r.get("from") == "peers.jsonl":
            reused.setdefault(r["data"], set()).add(r["budget"])
    return "".join(f"; its rows for {data} at {', '.join(map(str, sorted(b)))}/class are the peers benchmark's, "
                   "whose draws and test examples are the same" for data, b in sorted(reused.items()))


def _costly() -> str:
    return "".join(f" {data}'s contrastive and SetFit are trained only with `--costly` ({cost})."
                   for data, cost in COSTLY.items())


def table(rows: list[dict]) -> str:
    budgets = sorted({r["budget"] for r in rows})
    settings = [s[0] for s in SETTINGS] + [s[0] for s in PEER_SETTINGS]
    out = []
    for data in [d for d in DATASETS if any(r["data"] == d for r in rows)]:
        lines = [f"**{data}** (test accuracy, mean ± sd over the seeds' draws; n = seeds; seconds per fit)", "",
                 "| setting | " + " | ".join(f"{b}/class" for b in budgets) + " |",
                 "|---|" + "---|" * len(budgets)]
        for s in settings:
            cells = []
            for b in budgets:
                mine = [r for r in rows if r["data"] == data and r["setting"] == s and r["budget"] == b]
                acc = [r["test_acc"] for r in mine]
                sd = f" ± {statistics.stdev(acc):.3f}" if len(acc) > 1 else ""
                seconds = statistics.mean(r["fit_seconds"] for r in mine) if mine else 0.0
                cells.append(f"{statistics.mean(acc):.3f}{sd} (n={len(acc)}, {seconds:.1f} s)" if acc else "")
            if any(cells):
                lines.append(f"| {s} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return ("`minilm-l6`, the race's split (seed 0), scored on its test part; one budget draw per seed, the same for "
            "every setting. Below 4/class nothing is held out. `prototype, prior=names` starts each class at its "
            "name's prompt embedding (zero-shot's) counted as one example; `synthetic=8` adds SetFit's 8 templated "
            "texts per class (\"This sentence is {}\"). SetFit (its defaults, pairs capped at `num_iterations=20` as "
            "in the peers benchmark) trains on every label of the same draw" + _reused(rows)
            + ". The peers benchmark's `contrastive` rows are not reused: it reads texts to 64 tokens, this benchmark "
            "to the backbone's default." + _costly() + " At 1/class no two real texts share a class: SetFit pairs "
            "each text with itself (already at similarity 1, so no signal) and its one different-class pair, and "
            "scored exactly as the probe at every seed; `contrastive` pushes the classes apart without pulling any "
            "together, and with `synthetic` the templated texts give each class its same-class pairs. At 0/class "
            "only `synthetic` has anything to train on: the templated texts alone.\n\n"
            + "\n\n".join(out)
            + "\n\nRows: `benchmarks/results/few_labels.jsonl` (`python benchmarks/few_labels.py` resumes them).")


if __name__ == "__main__":
    main()
