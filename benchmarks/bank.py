"""One body, many adapters: three models on one loaded body against three separate loads.

    python benchmarks/bank.py [--table]

Three MiniLM models, one per task (``lora`` on rotten-tomatoes, ``lora`` on vader-tweets, ``probe``
on 20newsgroups; 32 labels per class, seed 0), are fitted once and saved under
``~/.cache/headstart/bench-bank/``. Then, each in a fresh process (so peak memory is that process's
own): **bank**, ``AdapterBank.load`` of the three folders and every model's predictions on the same
1,000 rotten-tomatoes texts; **separate**, three ``Adapter.load`` calls kept in memory side by side and
the same predictions. The two must agree exactly; the table gives load seconds, predict seconds and
peak resident memory for each, measured in one run, and each saved folder's size on disk.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bank.jsonl"
MODELS = {"reviews": ("rotten-tomatoes", "lora"), "tweets": ("vader-tweets", "lora"),
          "topics": ("20newsgroups", "probe")}
BUDGET, TEXTS = 32, 1000


def _folder() -> Path:
    from headstart.fetch import cache_dir

    return cache_dir() / "bench-bank"


def fit_models() -> dict[str, Path]:
    from headstart import Adapter, load_task
    from headstart.data import budget_indices, make_splits

    folders = {}
    for name, (data, spec) in MODELS.items():
        folder = _folder() / name
        if not (folder / "adapter.json").exists():
            task = load_task(data)
            splits = make_splits(task, seed=0)
            index = budget_indices(task, splits.pool, BUDGET, seed=0)
            Adapter("minilm-l6", spec, seed=0).fit(task.subset(index)).save(folder)
        folders[name] = folder
    return folders


def measure(mode: str) -> dict:
    """In this process: load the three models one way, predict the texts with each, report time and peak memory."""
    from headstart import Adapter, AdapterBank, load_task

    folders = {name: _folder() / name for name in MODELS}
    texts = list(load_task("rotten-tomatoes").inputs[:TEXTS])
    tic = time.perf_counter()
    if mode == "bank":
        bank = AdapterBank.load(list(folders.values()), names=list(folders))
        models = {name: bank[name] for name in folders}
    else:
        models = {name: Adapter.load(folder) for name, folder in folders.items()}
    loaded = time.perf_counter()
    labels = {name: [str(x) for x in m.predict(texts)] for name, m in models.items()}
    done = time.perf_counter()
    return {"mode": mode, "load_s": loaded - tic, "predict_s": done - loaded, "labels": labels,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", action="store_true", help="only rebuild BENCHMARKS.md's section from the rows")
    ap.add_argument("--child", choices=("bank", "separate"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    if not args.table:
        folders = fit_models()
        runs = {}
        for mode in ("bank", "separate", "bank", "separate"):  # twice each, alternating: the machine is shared
            out = subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True, text=True,
                                 check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            runs.setdefault(mode, []).append(row)
        same = runs["bank"][0]["labels"] == runs["separate"][0]["labels"]
        sizes = {name: sum(f.stat().st_size for f in folder.iterdir()) for name, folder in folders.items()}
        rows = [{"key": mode, "mode": mode, "load_s": min(r["load_s"] for r in rs),
                 "predict_s": min(r["predict_s"] for r in rs), "peak_mb": min(r["peak_mb"] for r in rs),
                 "same_labels": same, "sizes": sizes} for mode, rs in runs.items()]
        merge_jsonl(RESULTS, rows, order=lambda r: r["key"])
    write()


def table(rows: list[dict]) -> str:
    if not rows:
        return "Not measured yet (`python benchmarks/bank.py`)."
    by = {r["mode"]: r for r in rows}
    lines = ["| three models | load s | predict 1,000 texts with each, s | peak memory, MB |", "|---|---|---|---|"]
    names = {"bank": "one body (`AdapterBank`)", "separate": "three `Adapter.load`"}
    for mode in ("bank", "separate"):
        if mode in by:
            r = by[mode]
            lines.append(f"| {names[mode]} | {r['load_s']:.1f} | {r['predict_s']:.1f} | {r['peak_mb']:.0f} |")
    sizes = next(iter(by.values()))["sizes"]
    same = all(r["same_labels"] for r in rows)
    spec = ", ".join(f"{n} `{s}` on {d}" for n, (d, s) in MODELS.items())
    return (f"{spec} (MiniLM-L6, {BUDGET} labels per class, seed 0); each way in its own fresh process, twice, "
            "alternating, the faster of the two kept.\n\n" + "\n".join(lines) + "\n\n"
            f"The bank's labels {'equal' if same else 'DIFFER FROM'} the separate loads' on every text. Saved "
            "folders: " + ", ".join(f"{n} {s / 1e6:.2f} MB" for n, s in sizes.items()) + " (the body is never "
            "saved: every folder names it by identity).\n\nRows: `benchmarks/results/bank.jsonl` "
            "(`python benchmarks/bank.py`).")


def write() -> None:
    write_section("bank", "One body, many adapters: three models on one loaded body vs three loads",
                  table(read_jsonl(RESULTS)))


if __name__ == "__main__":
    main()
