"""Issue #3's measurements: feature cache, loop overhead, boundary cache, memory and trainable parameters.

    python benchmarks/training.py            # writes its sections of BENCHMARKS.md
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from headstart import Adapter  # noqa: E402
from headstart.data import draw, load_task, make_splits  # noqa: E402


def _data(budget=64):
    task = load_task("rotten-tomatoes")
    tr, va = draw(task, make_splits(task), budget, seed=0)
    return task.subset(tr), task.subset(va)


def _fit_seconds(train, val, spec, **options) -> float:
    tic = time.perf_counter()
    Adapter("minilm-l6", spec, feature_cache=None, patience=10**6, **options).fit(train, val=val)
    return time.perf_counter() - tic


def cache_ratios(repeats: int = 2) -> str:
    train, val = _data()
    rows = []
    for spec, epochs, extra in (("probe", 20, {"solver": "sgd"}), ("partial:2", 5, {})):
        cached, direct = [], []
        for _ in range(repeats):  # interleaved, so drift on a shared machine hits both alike
            cached.append(_fit_seconds(train, val, spec, epochs=epochs, **extra))
            direct.append(_fit_seconds(train, val, spec, epochs=epochs, cache_features=False, **extra))
        c, d = statistics.median(cached), statistics.median(direct)
        rows.append(f"| `{spec}` ({epochs} epochs) | {c:.1f} s | {d:.1f} s | **{d / c:.1f}×** |")
    return (f"rotten-tomatoes, 64 labelled examples per class ({len(train)} train, {len(val)} validation), "
            "`minilm-l6`, batch 16; "
            f"median of {repeats} interleaved runs; the cached run includes computing the cache once.\n\n"
            "| strategy | with the cache | frozen bottom re-run every epoch | speed-up |\n|---|---|---|---|\n"
            + "\n".join(rows))


def loop_overhead(steps: int = 24, repeats: int = 3) -> str:
    """headstart's loop vs a bare PyTorch loop: same model, same batches, same optimiser and schedule."""
    from headstart.backbones import create_backbone
    from headstart.strategies import create_strategy
    from headstart.train import AdaptedModel, BatchSource, TrainConfig, build_param_groups, run_training

    train, _ = _data(budget=steps * 8)  # two classes: steps * 16 texts
    texts, labels = list(train.inputs[: steps * 16]), train.labels[: steps * 16]
    assert len(texts) == steps * 16
    cfg = TrainConfig(batch_size=16, patience=10**6, seed=0, precision="fp32")  # the bare loop is fp32 too

    def fresh():
        torch.manual_seed(0)
        model = AdaptedModel(create_backbone("minilm-l6"), 2)
        groups, _ = build_param_groups(model, create_strategy("full").plan(model.n_blocks), 5e-5, 1e-3, 0.01)
        return model, groups

    def ours() -> float:
        model, groups = fresh()
        src = BatchSource(texts, labels, model.backbone.preprocess)
        val = BatchSource(texts[:2], labels[:2], model.backbone.preprocess)
        tic = time.perf_counter()
        run_training(model, groups, 0, src, val, cfg, 1, stage="full")
        return time.perf_counter() - tic

    def bare() -> float:
        model, groups = fresh()
        opt = torch.optim.AdamW(groups, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        params = [p for g in groups for p in g["params"]]
        model.train()
        order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0))
        tic = time.perf_counter()
        for idx in order.split(16):
            state = model.backbone.preprocess([texts[i] for i in idx])
            loss = torch.nn.functional.cross_entropy(model(state), torch.as_tensor(labels[idx.numpy()]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():  # the same 2-example validation pass our loop does once per epoch
            model(model.backbone.preprocess(texts[:2]))
        return time.perf_counter() - tic

    a, b = [], []
    for _ in range(repeats):
        a.append(ours())
        b.append(bare())
    ta, tb = statistics.median(a), statistics.median(b)
    n = len(texts)
    return (f"`full` fine-tune of `minilm-l6`, {steps} steps of 16 rotten-tomatoes texts (tokenised per batch in "
            f"both), AdamW + clipping + LR schedule in both; median of {repeats} interleaved runs.\n\n"
            "| loop | seconds | texts/s |\n|---|---|---|\n"
            f"| bare PyTorch | {tb:.1f} | {n / tb:.1f} |\n| headstart `run_training` | {ta:.1f} | {n / ta:.1f} |\n\n"
            f"Throughput ratio headstart / bare: **{tb / ta:.3f}** (goal ≥ 0.95).")


MEMORY_CHILD = """
import json, sys, time
from headstart import Adapter
from headstart.data import draw, load_task, make_splits

def status(field):  # kB, from Linux's own accounting
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024

from headstart.backbones import create_backbone

task = load_task("rotten-tomatoes"); tr, va = draw(task, make_splits(task), 64, seed=0)
train, val = task.subset(tr), task.subset(va)
backbone = create_backbone("minilm-l6")  # loaded before the baseline: we measure what training adds
backbone.embed(list(train.inputs[:64]))  # first use of torch's kernels and thread pools: in the baseline too
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS:")
tic = time.perf_counter()
clf = Adapter(lambda pretrained: backbone, sys.argv[1], feature_cache=None, epochs=2, patience=10**6)
clf.fit(train, val=val)
print(json.dumps({"peak_mib": status("VmHWM:"), "before_mib": before, "trainable": clf.result_.trainable_params,
                  "seconds": time.perf_counter() - tic}))
"""


def memory() -> str:
    rows = []
    for spec in ("full", "lora", "probe"):
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, spec], capture_output=True, text=True, check=True)
        d = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(f"| `{spec}` | {d['trainable']:,} | **{d['peak_mib'] - d['before_mib']:.0f} MiB** | "
                    f"{d['peak_mib']:.0f} MiB | {d['before_mib']:.0f} MiB |")
    return ("Each strategy in its own process: `minilm-l6` (loaded and run once before the baseline), "
            "rotten-tomatoes 64 "
            "per class, 2 epochs, batch 16. The process's peak is reset (`/proc/self/clear_refs`) just before "
            "`fit`, so the peak is the fit's own; the baseline (imports and data) is shown beside it.\n\n"
            "| strategy | trainable parameters | fit's peak above baseline | peak RSS | baseline RSS |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows))


SECTIONS = {
    "cache": ("Feature cache: probe and partial:2, cached vs re-running the frozen bottom", cache_ratios),
    "loop": ("Training-loop overhead vs a bare PyTorch loop", loop_overhead),
    "memory": ("Peak memory and trainable parameters: full vs lora vs probe", memory),
}


def main() -> None:
    np.random.seed(0)
    for key in sys.argv[1:] or list(SECTIONS):  # e.g. `python benchmarks/training.py memory`
        title, measure = SECTIONS[key]
        write_section(key, title, measure())


if __name__ == "__main__":
    main()
