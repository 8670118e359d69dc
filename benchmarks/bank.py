"""One body, many adapters: three models on one loaded body against three separate loads.

    python benchmarks/bank.py [--table]

Three MiniLM models, one per task (``lora`` on rotten-tomatoes, ``lora`` on vader-tweets, ``probe``
on 20newsgroups; 32 labels per class, seed 0), are fitted once and saved under
``~/.cache/headstart/bench-bank/``. Then, each in a fresh process (so peak memory is that process's
own): **bank**, ``AdapterBank.load`` of the three folders and every model's predictions on the same
1,000 rotten-tomatoes texts; **separate**, three ``Adapter.load`` calls kept in memory side by side and
the same predictions. The two must agree exactly; the table gives load seconds, predict seconds and
peak resident memory for each, measured in one run, and each saved folder's size on disk.

Combining: the two LoRA models on one adapter whose update is the sum of theirs (``bank.combine``, weights
1 and 1, each keeping its own head), each scored on 1,000 test examples of its own task (the race's split,
never seen by either fit) alone and combined: what sharing one adapter costs each task.
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


def combining() -> list[dict]:
    """Each LoRA member's test accuracy on its own task, alone and with the members combined on one adapter."""
    from headstart import AdapterBank, load_task
    from headstart.data import make_splits

    loras = [name for name, (_, spec) in MODELS.items() if spec == "lora"]
    bank = AdapterBank.load([_folder() / name for name in loras], names=loras)
    tests = {}
    for name in loras:
        task = load_task(MODELS[name][0])
        test = task.subset(make_splits(task, seed=0).test[:TEXTS])
        tests[name] = (list(test.inputs), [task.classes[i] for i in test.labels])

    def accuracy(name: str) -> float:
        inputs, labels = tests[name]
        return sum(str(p) == y for p, y in zip(bank[name].predict(inputs), labels)) / len(labels)

    alone = {name: accuracy(name) for name in loras}
    bank.combine(loras, weights=[1.0] * len(loras))
    return [{"key": f"combine|{name}", "mode": "combine", "model": name, "data": MODELS[name][0],
             "acc_alone": alone[name], "acc_combined": accuracy(name), "n_test": len(tests[name][1])}
            for name in loras]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", action="store_true", help="only rebuild BENCHMARKS.md's section from the rows")
    ap.add_argument("--combine", action="store_true", help="only measure what combining the LoRA members costs")
    ap.add_argument("--child", choices=("bank", "separate"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    if args.combine:
        fit_models()
        merge_jsonl(RESULTS, combining(), order=lambda r: r["key"])
    elif not args.table:
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
    combined = [r for r in rows if r["mode"] == "combine"]
    rows = [r for r in rows if r["mode"] != "combine"]
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
            "saved: every folder names it by identity).\n\n" + _combined(combined) +
            "Rows: `benchmarks/results/bank.jsonl` (`python benchmarks/bank.py`, `--combine`).")


def _combined(rows: list[dict]) -> str:
    if not rows:
        return "What combining costs is not measured yet (`python benchmarks/bank.py --combine`).\n\n"
    lines = ["| model (its own task) | test accuracy alone | with the LoRA members combined | combined − alone |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} ({r['data']}) | {r['acc_alone']:.3f} | {r['acc_combined']:.3f} | "
                     f"{r['acc_combined'] - r['acc_alone']:+.3f} |")
    return ("**Combining**: both LoRA members on one adapter whose update is the exact sum of theirs "
            "(`bank.combine`, weights 1 and 1; each keeps its own head), scored on "
            f"{rows[0]['n_test']:,} test examples of its own task that neither fit saw:\n\n" + "\n".join(lines)
            + "\n\n")


def write() -> None:
    write_section("bank", "One body, many adapters: three models on one loaded body vs three loads",
                  table(read_jsonl(RESULTS)))


if __name__ == "__main__":
    main()
