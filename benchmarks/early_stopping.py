"""Early stopping on a small validation split vs training the planned schedule and keeping the last weights.

    python benchmarks/early_stopping.py                                  # both datasets, 8/32/128 per class
    python benchmarks/early_stopping.py --data rotten-tomatoes --strategies full,lora --budgets 128
    python benchmarks/early_stopping.py --report                         # only rebuild the section

The fine-tunes race with ``monitor=none`` on the peers benchmark's draws, seeds and held-out examples
(``benchmarks/peers.py``); their default runs (early stopping on validation accuracy, best epoch
restored) are the rows ``peers.jsonl`` already holds for the same keys, so the two are paired by seed.
Every run is stored (resumable) and exported to ``benchmarks/results/early_stopping.jsonl``; a fresh
clone trains only what that file lacks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402
from _targets import by_seed, compare, state  # noqa: E402
from peers import MAX_LENGTH, RESULTS, TEST_LIMIT, race_missing  # noqa: E402

from headstart.data import load_task  # noqa: E402
from headstart.race import RaceSpec, ResultStore, prepare_race  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "early_stopping.jsonl"
FINE_TUNES = ["full", "lora", "lldr", "partial:2"]
KEEP = ("data", "strategy", "budget", "seed", "sel_acc", "test_acc", "seconds", "epochs", "best_epoch", "stop_reason",
        "key", "headstart")


def _spec(data: str, strategies: list[str], budgets: list[int], seeds: int) -> RaceSpec:
    return RaceSpec(data, "minilm-l6", strategies=strategies, budgets=budgets, seeds=seeds, test_limit=TEST_LIMIT,
                    backbone_options={"max_length": MAX_LENGTH}, train_options={"monitor": "none"})


def run(data: str, strategies: list[str], budgets: list[int], seeds: int, out: Path) -> None:
    task = load_task(data)
    spec = _spec(data, strategies, budgets, seeds)
    race_missing(spec, prepare_race(spec, task), task, out / data, {r["key"] for r in read_jsonl(OUT)},
                 on_run_end=lambda *_: export_store(data, out))  # each finished run reaches the JSONL at once


def export(data: str, records: list[dict]) -> None:
    merge_jsonl(OUT, [{k: r.get(k) for k in KEEP} | {"data": data} for r in records],
                order=lambda r: (r["data"], r["budget"], r["strategy"], r["seed"]))


def export_store(data: str, out: Path) -> None:
    if (out / data / "results.sqlite").exists():
        with ResultStore(out / data / "results.sqlite") as store:
            export(data, store.records())


def _mean(d: dict[int, float], seeds: list[int]) -> str:
    values = [d[s] for s in seeds if s in d]
    return f"{sum(values) / len(values):.3f}" if values else "–"


def section(seeds: int) -> str:
    from headstart import __version__

    variant = [r for r in read_jsonl(OUT) if r.get("headstart") == __version__]
    default = [r for r in read_jsonl(RESULTS) if r.get("headstart") == __version__ and r.get("strategy")]
    lines = ["| data | strategy | labels/class | selection: early stopping → none | difference (noise) | test: early "
             "stopping → none | epochs kept (none) |", "|---|---|---|---|---|---|---|"]
    for data in sorted({r["data"] for r in variant}):
        ours, theirs = [r for r in variant if r["data"] == data], [r for r in default if r["data"] == data]
        for strategy in FINE_TUNES:
            for b in sorted({r["budget"] for r in ours}):
                none_sel, es_sel = by_seed(ours, strategy, b, "sel_acc"), by_seed(theirs, strategy, b, "sel_acc")
                cmp = compare(none_sel, es_sel, TEST_LIMIT)
                if cmp is None:
                    continue
                diff, noise, k = cmp
                seeds_note = "" if k == seeds else f" ({k} of {seeds} seeds)"
                shared = sorted(set(none_sel) & set(es_sel))
                none_test, es_test = by_seed(ours, strategy, b, "test_acc"), by_seed(theirs, strategy, b, "test_acc")
                epochs = sorted({r["epochs"] for r in ours if r["strategy"] == strategy and r["budget"] == b})
                sel = f"{_mean(es_sel, shared)} → {_mean(none_sel, shared)}"
                test = f"{_mean(es_test, shared)} → {_mean(none_test, shared)}"
                lines.append(f"| {data} | `{strategy}` | {b} | {sel} | {diff:+.3f} (±{noise:.3f}, "
                             f"{state(diff, noise)}){seeds_note} | {test} | {', '.join(map(str, epochs))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="rotten-tomatoes,vader-tweets")
    parser.add_argument("--strategies", default=",".join(FINE_TUNES))
    parser.add_argument("--budgets", default="8,32,128")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "runs" / "early-stopping"))
    parser.add_argument("--report", action="store_true", help="only rebuild the section from what is stored")
    args = parser.parse_args()
    for data in args.data.split(","):
        if args.report:
            export_store(data, Path(args.out))
        else:
            run(data, args.strategies.split(","), [int(b) for b in args.budgets.split(",")], args.seeds,
                Path(args.out))
    write_section("early-stopping", "Early stopping on a small validation split vs the planned schedule", (
        "The fine-tunes at their defaults (early stopping on validation accuracy, the best epoch restored, epoch 0 = "
        "the probe's head a candidate) against the same runs with `--set monitor=none` (every planned epoch, the "
        "last weights kept), on the peers benchmark's draws: same seeds, same 1,000 selection and 1,000 test "
        "examples. Differences are paired by seed and judged on *selection* accuracy with the race's noise rule "
        "(\"ahead\"/\"behind\" = more than 2 noise units; `benchmarks/_targets.py`). Per-run results: "
        "`benchmarks/results/early_stopping.jsonl` (rebuild with `python benchmarks/early_stopping.py "
        "--report`).\n\n" + section(args.seeds)))


if __name__ == "__main__":
    main()
