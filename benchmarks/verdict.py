"""The negative-transfer verdict on images: every from-scratch option against the probe and a full fine-tune.

    python benchmarks/verdict.py                 # mnist-5k, mobilenetv2 at 64 px, 8 and 64 labels/class, 3 seeds
    python benchmarks/verdict.py --report-only   # rebuild the section from benchmarks/results/verdict.jsonl

The race runs into ``runs/bench-verdict/`` (resumable: re-run to continue); every finished run is also
exported to ``benchmarks/results/verdict.jsonl``, the compact record the table is built from, so a fresh
clone can rebuild the section without re-running anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, write_section  # noqa: E402

from headstart.race import RaceSpec, ResultStore, negative_transfer, run_race, summarize  # noqa: E402
from headstart.race.analysis import best_per_budget, budget_label, choice_line  # noqa: E402
from headstart.race.runner import grid_records  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "verdict.jsonl"
SPEC = dict(data="mnist-5k", backbone="mobilenetv2", strategies=["scratch", "scratch-small", "probe", "full"],
            budgets=[8, 64], seeds=3, backbone_options={"image_size": 64}, test_limit=1000)
KEEP = ("strategy", "budget", "seed", "from_scratch", "per_class", "n_train", "n_val", "n_selection", "n_test",
        "sel_acc", "test_acc", "test_macro_f1", "trainable_params", "seconds", "seconds_per_epoch", "epochs",
        "best_epoch", "stop_reason", "delta_l2", "delta_relative", "key")


def export(records: list[dict]) -> None:
    """Merge ``records`` into the JSONL file by run key; a row of the same strategy, budget and seed under another
    key was measured under an older behaviour (its key changed with it) and is replaced (git keeps it)."""
    rows = {}
    if RESULTS.exists():
        rows = {r["key"]: r for r in map(json.loads, RESULTS.read_text().splitlines()) if r}
    fresh = {(r["strategy"], r["budget"], r["seed"]) for r in records}
    rows = {k: r for k, r in rows.items() if (r["strategy"], r["budget"], r["seed"]) not in fresh}
    for r in records:
        rows[r["key"]] = {k: r.get(k) for k in KEEP}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in
                               sorted(rows.values(), key=lambda r: (r["budget"] or 1e9, r["strategy"], r["seed"]))))


def section() -> None:
    records = [json.loads(line) for line in RESULTS.read_text().splitlines() if line]
    rows = summarize(records, SPEC["strategies"])
    best = best_per_budget(rows)
    verdict = negative_transfer(records)
    lines = ["| labels/class | strategy | from scratch | selection acc | test acc | test macro-F1 | trainable "
             "| s/run |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = f"**`{r.strategy}`**" if best[r.budget] == r.strategy else f"`{r.strategy}`"
        lines.append(f"| {budget_label(r.budget)} | {name} | {'yes' if r.from_scratch else 'no'} | "
                     f"{r.sel_acc_mean:.3f} | {r.acc_mean:.3f} ± {r.acc_std:.3f} | {r.f1_mean:.3f} ± {r.f1_std:.3f} | "
                     f"{r.trainable_params:,} | {r.seconds:.0f} |")
    seeds = max(r.seeds for r in rows)
    body = (f"`{SPEC['data']}`, `{SPEC['backbone']}` at {SPEC['backbone_options']['image_size']} px, "
            f"{seeds} seeds; budgets count every label a run saw (validation included). "
            f"{choice_line(rows[0].n_selection, rows[0].n_test)} Bold: best at that budget on selection accuracy. "
            "`scratch` is MobileNetV2's random-init twin; `scratch-small` is Conv-4 (112 k parameters) on the same "
            "preprocessing. s/run was measured while other benchmarks shared the two cores: compare accuracies, "
            "not times. `probe` and `full` were re-measured when fine-tunes began keeping a pretrained body's "
            "BatchNorm statistics frozen (`batchnorm=frozen`): `full` rose from 0.721 to 0.761 at 8/class and from "
            "0.929 to 0.950 at 64/class, where the verdict had read negative transfer; the from-scratch rows, whose "
            "behaviour did not change, are from the first run.\n\n" + "\n".join(lines)
            + "\n\n**The race's verdict**\n\n"
            + "\n".join(f"- {line}" for line in verdict.message.split("\n"))
            + "\n\nRaw per-run results: `benchmarks/results/verdict.jsonl`.")
    write_section("verdict", "Negative transfer on images: mnist-5k, every from-scratch option vs probe and full", body)
    print(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report-only", action="store_true", help="only rebuild the section from the JSONL")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-verdict"))
    parser.add_argument("--strategies", help="re-run only these of the grid (the others' committed rows are kept)")
    args = parser.parse_args()
    if not args.report_only:
        spec = RaceSpec(**{**SPEC, **({"strategies": args.strategies.split(",")} if args.strategies else {})})
        run_race(spec, args.out, progress=False, on_run_end=lambda rec, n, total: print(
            f"{rec['strategy']} {rec['budget']}/class seed {rec['seed']}: selection {rec['sel_acc']:.3f}, "
            f"test {rec['test_acc']:.3f} ({n}/{total})", flush=True))
    if (Path(args.out) / "results.sqlite").exists():  # a local store: refresh the committed rows from it
        with ResultStore(Path(args.out) / "results.sqlite") as store:
            export(grid_records(store)[0])
    section()


if __name__ == "__main__":
    main()
