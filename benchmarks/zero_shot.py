"""``zero-shot`` at 0 labels: class names alone vs the user's descriptions, beside a probe at 8 labels per class.

    python benchmarks/zero_shot.py

MiniLM on the named text examples, the race's split (seed 0), scored on its test part. Zero-shot sees no
labels (``Adapter.fit(None, classes=...)``); the probe sees 8 per class (seed 0), to show what the first
labels buy. Results: ``benchmarks/results/zero_shot.jsonl``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402

from headstart import Adapter  # noqa: E402
from headstart.data import draw, load_task, make_splits  # noqa: E402
from headstart.fetch import cache_dir  # noqa: E402
from headstart.train import FeatureCache  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "zero_shot.jsonl"
#: dataset -> descriptions of its classes, as a user would write them (None: the names alone)
DESCRIPTIONS = {
    "rotten-tomatoes": {"fresh": ("a positive movie review", "a film the critic loved"),
                        "rotten": ("a negative movie review", "a film the critic disliked")},
    "vader-tweets": None,
}


def main() -> None:
    rows = []
    cache = FeatureCache(cache_dir() / "features")
    for data, described in DESCRIPTIONS.items():
        task = load_task(data)
        splits = make_splits(task, seed=0)
        test = task.subset(splits.test)
        settings = [("zero-shot", "class names", {}, 0)]
        if described:
            settings.append(("zero-shot", "described", {"descriptions": described}, 0))
        settings.append(("probe", "8 labels per class", {}, 8))
        for strategy, how, options, budget in settings:
            clf = Adapter("minilm-l6", strategy, feature_cache=cache, progress=False, **options)
            tic = time.perf_counter()
            if budget == 0:
                clf.fit(None, classes=task.classes)
            else:
                tr, va = draw(task, splits, budget, seed=0)
                clf.fit(task.subset(tr), val=task.subset(va))
            seconds = time.perf_counter() - tic
            rows.append({"key": f"{data}|{strategy}|{how}", "data": data, "classes": list(task.classes),
                         "strategy": strategy, "setting": how, "budget": budget, "test_acc": clf.score(test),
                         "n_test": len(test), "fit_seconds": seconds})
            print(rows[-1], flush=True)
    merge_jsonl(RESULTS, rows, order=lambda r: r["key"])
    write_section("zero-shot", "Zero labels: zero-shot from class names or descriptions, beside a probe at 8/class",
                  table(read_jsonl(RESULTS)))


def _findings(rows: list[dict]) -> list[str]:
    out = []
    for data in sorted({r["data"] for r in rows}):
        mine = {r["setting"]: r["test_acc"] for r in rows if r["data"] == data}
        probe = mine.get("8 labels per class")
        names, described = mine.get("class names"), mine.get("described")
        if names is None or probe is None:
            continue
        text = f"{data}: zero-shot from the names {names:.3f}"
        if described is not None:
            text += f", described {described:.3f}"
        best = max(v for v in (names, described) if v is not None)
        text += f"; the probe at 8/class {probe:.3f} ({'below' if probe < best else 'above'} zero-shot's best)."
        out.append(text)
    return out


def table(rows: list[dict]) -> str:
    lines = ["| data | classes | strategy | setting | labels per class | test accuracy | fit seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        classes = ", ".join(r["classes"])
        lines.append(f"| {r['data']} | {classes} | `{r['strategy']}` | {r['setting']} | {r['budget']} | "
                     f"{r['test_acc']:.3f} | {r['fit_seconds']:.1f} |")
    return ("`minilm-l6`, the race's split (seed 0), scored on its test part. `zero-shot` sees no labels: each class "
            "is the mean embedding of its prompts, from its name (\"This text is about fresh.\") or from "
            "descriptions in the user's words (`--class-descriptions`: \"a positive movie review | a film the critic "
            "loved\"); deterministic, so one seed. The probe at 8 labels per class (seed 0) shows what the first "
            "labels buy.\n\n" + "\n".join(lines) + "\n\n" + " ".join(_findings(rows))
            + "\n\nRows: `benchmarks/results/zero_shot.jsonl`.")


if __name__ == "__main__":
    main()
