"""bf16 autocast vs fp32 training: step throughput and held-out accuracy, side by side.

    python benchmarks/precision.py          # writes the "precision" section of BENCHMARKS.md

Only meaningful on hardware with native bf16 (AVX512-BF16/AMX CPUs, Ampere+ GPUs); elsewhere
``precision="auto"`` trains in fp32 and this script says so.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from headstart import Adapter  # noqa: E402
from headstart.data import draw, load_task, make_splits  # noqa: E402
from headstart.train.precision import native_bf16  # noqa: E402

TEST = 1000


def _fit(train, val, spec, precision, **options):
    tic = time.perf_counter()
    clf = Adapter("minilm-l6", spec, feature_cache=None, precision=precision, seed=0,
                  backbone_options={"max_length": 64}, **options).fit(train, val=val)
    return clf, time.perf_counter() - tic


def measure(repeats: int = 2) -> str:
    task = load_task("rotten-tomatoes")
    splits = make_splits(task)
    test = task.subset(splits.test[:TEST])
    rows = []
    for spec, budget, options in (("full", 32, {"epochs": 4, "patience": 10**6}), ("contrastive", 32, {})):
        tr, va = draw(task, splits, budget, seed=0)
        train, val = task.subset(tr), task.subset(va)
        runs: dict[str, list] = {"fp32": [], "bf16": []}
        for _ in range(repeats):  # interleaved, so drift on a shared machine hits both alike
            for precision in runs:
                runs[precision].append(_fit(train, val, spec, precision, **options))
        secs = {p: statistics.median(s for _, s in r) for p, r in runs.items()}
        accs = {p: r[0][0].score(test) for p, r in runs.items()}
        rows.append(f"| `{spec}` ({budget}/class) | {secs['fp32']:.0f} s | {secs['bf16']:.0f} s | "
                    f"**{secs['fp32'] / secs['bf16']:.2f}×** | {accs['fp32']:.3f} | {accs['bf16']:.3f} |")
    native = native_bf16(torch.device("cpu"))
    return (f"rotten-tomatoes, `minilm-l6` (max 64 tokens), seed 0, {TEST} test examples; whole `fit` "
            f"(loading, training, probe) timed, median of {repeats} interleaved runs. This CPU "
            f"{'has' if native else 'lacks'} native bf16, so `precision=\"auto\"` trains in "
            f"{'bf16' if native else 'fp32'} here.\n\n"
            "| strategy | fp32 | bf16 autocast | speed-up | test acc fp32 | test acc bf16 |\n"
            "|---|---|---|---|---|---|\n"
            + "\n".join(rows))


if __name__ == "__main__":
    write_section("precision", "Mixed precision: bf16 autocast vs fp32 training", measure())
