"""Early stopping on a small validation split vs training the planned schedule and keeping the last weights.

    python benchmarks/early_stopping.py                                  # both datasets, 8/32/128 per class
    python benchmarks/early_stopping.py --data rotten-tomatoes --strategies full,lora --budgets 128
    python benchmarks/early_stopping.py --strategies lora --set lora.lr=5e-4   # the same pair at another setting
    python benchmarks/early_stopping.py --report                         # only rebuild the section

The fine-tunes race twice on the peers benchmark's draws, seeds and held-out examples
(``benchmarks/peers.py``): with ``monitor=val_acc`` (early stopping, the best epoch restored) and with
``monitor=none`` (every planned epoch, the last weights kept), so the two are paired by seed. A run's
key is its identity after every default is resolved, so whichever of the two is a strategy's default
is the very run ``peers.jsonl`` holds: rows are looked up by key in both files and only runs neither
file has are trained. Every run is stored (resumable) and exported to
``benchmarks/results/early_stopping.jsonl``; a fresh clone trains only what the two files lack.
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
from headstart.race import RaceSpec, ResultStore, prepare_race  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "early_stopping.jsonl"
MONITORS = ("val_acc", "none")
BUDGETS = [8, 32, 128]
KEEP = ("data", "strategy", "budget", "seed", "sel_acc", "test_acc", "seconds", "epochs", "best_epoch", "stop_reason",
        "key", "headstart", "monitor", "options")


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``["lora.lr=5e-4"]`` -> ``{"lora.lr": 0.0005}`` (numbers parsed, the rest kept as text)."""
    options: dict[str, object] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            options[name] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            options[name] = value
    return options


def _label(options: dict[str, object]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(options.items()))


def _spec(data: str, strategies: list[str], budgets: list[int], seeds: int, monitor: str,
          options: dict[str, object]) -> RaceSpec:
    return RaceSpec(data, "minilm-l6", strategies=strategies, budgets=budgets, seeds=seeds, test_limit=TEST_LIMIT,
                    backbone_options={"max_length": MAX_LENGTH}, train_options={**options, "monitor": monitor})


def _stored() -> dict[str, dict]:
    """Every committed headstart run of both files, by key."""
    return {r["key"]: r for r in read_jsonl(RESULTS) + read_jsonl(OUT) if r.get("strategy") and r.get("key")}


def run(data: str, strategies: list[str], budgets: list[int], seeds: int, out: Path,
        options: dict[str, object]) -> None:
    task = load_task(data)
    for monitor in MONITORS:
        spec = _spec(data, strategies, budgets, seeds, monitor, options)
        prepared = prepare_race(spec, task)
        keys = {spec.run_key(run, prepared.fingerprint, prepared.test_fingerprint) for run in spec.runs()}
        store = out / data / (_label(options).replace(" ", "").replace(",", "_") or "defaults")

        def export_store(*_, store: Path = store, monitor: str = monitor, keys: set[str] = keys) -> None:
            with ResultStore(store / "results.sqlite") as s:  # each finished run reaches the JSONL at once
                export(data, [r for r in s.records() if r["key"] in keys], monitor, options)

        race_missing(spec, prepared, task, store, set(_stored()), on_run_end=export_store)
        if (store / "results.sqlite").exists():
            export_store()  # runs a killed earlier process finished but did not export


def export(data: str, records: list[dict], monitor: str, options: dict[str, object]) -> None:
    merge_jsonl(OUT, [{k: r.get(k) for k in KEEP} | {"data": data, "monitor": monitor, "options": _label(options)}
                      for r in records],
                order=lambda r: (r["data"], r.get("options") or "", r["budget"], r["strategy"], r["seed"],
                                 r.get("monitor") or ""))


def _keys(spec: RaceSpec, task) -> dict[str, tuple[str, int, int]]:
    prepared = prepare_race(spec, task)
    return {spec.run_key(run, prepared.fingerprint, prepared.test_fingerprint): (run.strategy, run.budget, run.seed)
            for run in spec.runs()}


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.3f}" if values else "–"


def section(seeds: int) -> str:
    stored = _stored()
    variants = sorted({(r["data"], r.get("options") or "") for r in read_jsonl(OUT)})
    lines = ["| data | setting | strategy | labels/class | selection: early stopping → none | difference (noise) | "
             "test: early stopping → none | epochs kept (none) |", "|---|---|---|---|---|---|---|---|"]
    for data, label in variants:
        task = load_task(data)
        options = parse_options(label.split(", ") if label else [])
        plain = set().union(*(_keys(_spec(data, FINE_TUNES, BUDGETS, seeds, m, {}), task) for m in MONITORS))
        found = {}
        for monitor in MONITORS:
            for key, cell in _keys(_spec(data, FINE_TUNES, BUDGETS, seeds, monitor, options), task).items():
                if key in stored and (not label or key not in plain):  # a setting's rows: the runs it changes
                    found[(monitor, *cell)] = stored[key]
        for strategy in FINE_TUNES:
            for b in BUDGETS:
                runs = {m: {s: found[(m, strategy, b, s)] for s in range(seeds) if (m, strategy, b, s) in found}
                        for m in MONITORS}
                shared = sorted(set(runs["val_acc"]) & set(runs["none"]))
                if not shared:
                    continue
                sel = {m: {s: runs[m][s]["sel_acc"] for s in shared} for m in MONITORS}
                diff, noise, k = compare(sel["none"], sel["val_acc"], TEST_LIMIT)
                seeds_note = "" if k == seeds else f" ({k} of {seeds} seeds)"
                mean = {(m, f): _mean([runs[m][s][f] for s in shared]) for m in MONITORS for f in ("sel_acc",
                                                                                                   "test_acc")}
                epochs = sorted({runs["none"][s]["epochs"] for s in shared})
                lines.append(f"| {data} | {label or 'defaults'} | `{strategy}` | {b} | {mean['val_acc', 'sel_acc']} → "
                             f"{mean['none', 'sel_acc']} | {diff:+.3f} (±{noise:.3f}, {state(diff, noise)})"
                             f"{seeds_note} | {mean['val_acc', 'test_acc']} → {mean['none', 'test_acc']} | "
                             f"{', '.join(map(str, epochs))} |")
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
    options = parse_options(args.set)
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
        "\"setting\": other options both runs of the pair share. Differences are paired by seed and judged on "
        "*selection* accuracy with the race's noise rule (\"ahead\"/\"behind\" = more than 2 noise units; "
        "`benchmarks/_targets.py`). Per-run results: `benchmarks/results/early_stopping.jsonl` and "
        "`peers.jsonl` (rebuild with `python benchmarks/early_stopping.py --report`).\n\n" + section(args.seeds)))


if __name__ == "__main__":
    main()
