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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402
from _targets import FINE_TUNES, compare, state  # noqa: E402
from _variants import label, lr_of, mean, parser, race_and_export, spec, store_for  # noqa: E402
from peers import RESULTS, held_out, held_out_text  # noqa: E402

from headstart.data import load_task  # noqa: E402
from headstart.options import parse_options  # noqa: E402
from headstart.race import prepare_race  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "early_stopping.jsonl"
MONITORS = ("val_acc", "none")
BUDGETS = [8, 32, 128]
KEEP = ("data", "strategy", "budget", "seed", "sel_acc", "test_acc", "seconds", "epochs", "best_epoch", "stop_reason",
        "key", "headstart", "monitor", "options", "lr")


def run(data: str, strategies: list[str], budgets: list[int], seeds: int, out: Path,
        options: dict[str, object]) -> None:
    task = load_task(data)
    prepared = prepare_race(spec(data, strategies, budgets, seeds, options), task)
    committed = {r["key"] for r in read_jsonl(RESULTS) + read_jsonl(OUT) if r.get("strategy") and r.get("key")}
    for monitor in MONITORS:
        race_and_export(spec(data, strategies, budgets, seeds, {**options, "monitor": monitor}), prepared, task,
                        store_for(out, data, options), committed,
                        lambda records, monitor=monitor: export(data, records, monitor, options))


def export(data: str, records: list[dict], monitor: str, options: dict[str, object]) -> None:
    """Add ``records`` to the JSONL file with the monitor and learning rate they trained at (rows already
    there are kept as they are)."""
    have = {r["key"] for r in read_jsonl(OUT)}
    merge_jsonl(OUT, [{k: r.get(k) for k in KEEP} | {"data": data, "monitor": monitor, "options": label(options),
                                                    "lr": lr_of(r["strategy"], options)}
                      for r in records if r["key"] not in have],
                order=lambda r: (r["data"], r.get("options") or "", r["budget"], r["strategy"], r["seed"],
                                 r.get("monitor") or ""))


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
                                 held_out(data)[0])
        seeds_note = "" if k == seeds else f" ({k} of {seeds} seeds)"
        mean_of = {(m, f): mean(r[f] for r in pick[m].values()) for m in MONITORS for f in ("sel_acc", "test_acc")}
        epochs = sorted({r["epochs"] for r in pick["none"].values()})
        lines.append(f"| {data} | `{FINE_TUNES[index]}` | {-lr:g} | {budget} | {mean_of['val_acc', 'sel_acc']} → "
                     f"{mean_of['none', 'sel_acc']} | {diff:+.3f} (±{noise:.3f}, {state(diff, noise)}){seeds_note} | "
                     f"{mean_of['val_acc', 'test_acc']} → {mean_of['none', 'test_acc']} | "
                     f"{', '.join(map(str, epochs))} |")
    return "\n".join(lines)


def main() -> None:
    args = parser(__doc__.split("\n")[0], str(ROOT / "runs" / "early-stopping"), ",".join(map(str, BUDGETS)),
                  "another training or strategy option for both runs of the pair (lora.lr=5e-4)").parse_args()
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
        "the last weights kept), on the peers benchmark's draws: same seeds, same selection and test "
        f"examples ({held_out_text(sorted({r['data'] for r in read_jsonl(OUT)}))}). Whichever of the two is a "
        "strategy's default is the run of the peers section (same key). "
        "\"learning rate\": the rate both runs of the pair trained at (LoRA's default was 1e-3 until it moved to "
        "5e-4). Differences are paired by seed and judged on "
        "*selection* accuracy with the race's noise rule (\"ahead\"/\"behind\" = more than 2 noise units; "
        "`benchmarks/_targets.py`). Per-run results: `benchmarks/results/early_stopping.jsonl` and "
        "`peers.jsonl` (rebuild with `python benchmarks/early_stopping.py --report`).\n\n" + section(args.seeds)))


if __name__ == "__main__":
    main()
