"""Early stopping on a small validation split vs training the planned schedule and keeping the last weights.

    python benchmarks/early_stopping.py                                  # both datasets, 8/32/128 per class
    python benchmarks/early_stopping.py --data rotten-tomatoes --strategies full,lora --budgets 128
    python benchmarks/early_stopping.py --strategies lora --set lora.lr=5e-4   # the same pair at another setting
    python benchmarks/early_stopping.py --report                         # only rebuild the section

The fine-tunes race twice on the peers benchmark's draws, seeds and held-out examples
(``benchmarks/peers.py``): with ``monitor=val_acc`` (early stopping, the best epoch restored) and with
``monitor=none`` (every planned epoch, the last weights kept), so the two are paired by seed. A run's
key is its identity after every default is resolved, so whichever of the two is a strategy's default
is the very run ``peers.jsonl`` holds: only runs neither file has are trained, and that run is copied
in. Each row of ``benchmarks/results/early_stopping.jsonl`` records the monitor and the learning rate
it trained at, and the section is built from those fields alone, so a later change of a default
(LoRA's rate, say) never drops the rows measured before it. Every run is stored (resumable); a fresh
clone trains only what the two files lack.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402
from _targets import FINE_TUNES, compare, state  # noqa: E402
from peers import MAX_LENGTH, RESULTS, TEST_LIMIT, race_missing  # noqa: E402

from headstart.data import load_task  # noqa: E402
from headstart.options import options_for, parse_options  # noqa: E402
from headstart.race import RaceSpec, ResultStore, prepare_race  # noqa: E402
from headstart.strategies import create_strategy  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "early_stopping.jsonl"
MONITORS = ("val_acc", "none")
BUDGETS = [8, 32, 128]
KEEP = ("data", "strategy", "budget", "seed", "sel_acc", "test_acc", "seconds", "epochs", "best_epoch", "stop_reason",
        "key", "headstart", "monitor", "options", "lr")


def _label(options: dict[str, object]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(options.items()))


def _spec(data: str, strategies: list[str], budgets: list[int], seeds: int, monitor: str,
          options: dict[str, object]) -> RaceSpec:
    return RaceSpec(data, "minilm-l6", strategies=strategies, budgets=budgets, seeds=seeds, test_limit=TEST_LIMIT,
                    backbone_options={"max_length": MAX_LENGTH}, train_options={**options, "monitor": monitor})


def _stored() -> dict[str, dict]:
    """Every committed headstart run of both files, by key."""
    return {r["key"]: r for r in read_jsonl(RESULTS) + read_jsonl(OUT) if r.get("strategy") and r.get("key")}


def _lr(strategy: str, options: dict[str, object]) -> float:
    """The learning rate ``strategy`` trains at under ``options`` (its default unless one is set)."""
    return options_for(options, strategy).get("lr") or create_strategy(strategy).default_lr


def run(data: str, strategies: list[str], budgets: list[int], seeds: int, out: Path,
        options: dict[str, object]) -> None:
    task = load_task(data)
    prepared = prepare_race(_spec(data, strategies, budgets, seeds, MONITORS[0], options), task)
    store = out / data / (_label(options).replace(" ", "").replace(",", "_") or "defaults")
    for monitor in MONITORS:
        spec = _spec(data, strategies, budgets, seeds, monitor, options)
        keys = _keys(spec, prepared)

        def export_runs(*_, monitor: str = monitor, keys: set[str] = keys) -> None:
            """This pair's finished runs, from the store and (a strategy's default) from peers.jsonl."""
            records = [r for r in read_jsonl(RESULTS) if r.get("key") in keys]
            if (store / "results.sqlite").exists():
                with ResultStore(store / "results.sqlite") as s:
                    records += [r for r in s.records() if r["key"] in keys]
            export(data, records, monitor, options)

        race_missing(spec, prepared, task, store, set(_stored()), on_run_end=export_runs)
        export_runs()  # runs found in peers.jsonl, or finished by a killed earlier process


def export(data: str, records: list[dict], monitor: str, options: dict[str, object]) -> None:
    """Add ``records`` to the JSONL file with the monitor and learning rate they trained at (rows already
    there are kept as they are)."""
    have = {r["key"] for r in read_jsonl(OUT)}
    merge_jsonl(OUT, [{k: r.get(k) for k in KEEP} | {"data": data, "monitor": monitor, "options": _label(options),
                                                    "lr": _lr(r["strategy"], options)}
                      for r in records if r["key"] not in have],
                order=lambda r: (r["data"], r.get("options") or "", r["budget"], r["strategy"], r["seed"],
                                 r.get("monitor") or ""))


def _keys(spec: RaceSpec, prepared) -> set[str]:
    """The run keys of ``spec`` (``prepared`` depends only on the data, split seed and test limit)."""
    return {spec.run_key(run, prepared.fingerprint, prepared.test_fingerprint) for run in spec.runs()}


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.3f}" if values else "–"


def section(seeds: int) -> str:
    """One line per dataset, fine-tune, learning rate and budget with both monitors, paired by seed."""
    cells: dict[tuple, dict[str, dict[int, dict]]] = {}
    for r in read_jsonl(OUT):
        cell = cells.setdefault((r["data"], FINE_TUNES.index(r["strategy"]), -r["lr"], r["budget"]), {})
        cell.setdefault(r["monitor"], {}).setdefault(r["seed"], r)  # one run per seed (the first stored)
    lines = ["| data | strategy | learning rate | labels/class | selection: early stopping → none | difference (noise) "
             "| test: early stopping → none | epochs kept (none) |", "|---|---|---|---|---|---|---|---|"]
    for (data, index, lr, budget), runs in sorted(cells.items()):
        shared = sorted(set(runs.get("val_acc", {})) & set(runs.get("none", {})) & set(range(seeds)))
        if not shared:
            continue
        pick = {m: {s: runs[m][s] for s in shared} for m in MONITORS}
        diff, noise, k = compare(*({s: r["sel_acc"] for s, r in pick[m].items()} for m in ("none", "val_acc")),
                                 TEST_LIMIT)
        seeds_note = "" if k == seeds else f" ({k} of {seeds} seeds)"
        mean = {(m, f): _mean([r[f] for r in pick[m].values()]) for m in MONITORS for f in ("sel_acc", "test_acc")}
        epochs = sorted({r["epochs"] for r in pick["none"].values()})
        lines.append(f"| {data} | `{FINE_TUNES[index]}` | {-lr:g} | {budget} | {mean['val_acc', 'sel_acc']} → "
                     f"{mean['none', 'sel_acc']} | {diff:+.3f} (±{noise:.3f}, {state(diff, noise)}){seeds_note} | "
                     f"{mean['val_acc', 'test_acc']} → {mean['none', 'test_acc']} | {', '.join(map(str, epochs))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="rotten-tomatoes,vader-tweets")
    parser.add_argument("--strategies", default=",".join(FINE_TUNES))
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another training or strategy option for both runs of the pair (lora.lr=5e-4)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "early-stopping"))
    parser.add_argument("--report", action="store_true", help="only rebuild the section from what is stored")
    parser.add_argument("--no-tables", action="store_true", help="run and export only, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    options = parse_options(args.set, FINE_TUNES)
    if not args.report:
        for data in args.data.split(","):
            run(data, args.strategies.split(","), [int(b) for b in args.budgets.split(",")], args.seeds,
                Path(args.out), options)
    if args.no_tables:
        return
    write_section("early-stopping", "Early stopping on a small validation split vs the planned schedule", (
        "Each fine-tune with `monitor=val_acc` (early stopping on validation accuracy, the best epoch restored, "
        "epoch 0 = the probe's head a candidate) against the same run with `monitor=none` (every planned epoch, "
        "the last weights kept), on the peers benchmark's draws: same seeds, same 1,000 selection and 1,000 test "
        "examples. Whichever of the two is a strategy's default is the run of the peers section (same key). "
        "\"learning rate\": the rate both runs of the pair trained at (LoRA's default was 1e-3 until it moved to "
        "5e-4). Differences are paired by seed and judged on "
        "*selection* accuracy with the race's noise rule (\"ahead\"/\"behind\" = more than 2 noise units; "
        "`benchmarks/_targets.py`). Per-run results: `benchmarks/results/early_stopping.jsonl` and "
        "`peers.jsonl` (rebuild with `python benchmarks/early_stopping.py --report`).\n\n" + section(args.seeds)))


if __name__ == "__main__":
    main()
