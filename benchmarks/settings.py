"""Other settings of a strategy, raced against its default on the peers benchmark's draws.

    python benchmarks/settings.py --data vader-tweets --strategies lldr --budgets 128 --set lldr.decay=0.9
    python benchmarks/settings.py --strategies partial:2 --budgets 128 --set partial.lr=3e-4
    python benchmarks/settings.py --strategies partial:4 --budgets 128   # a variant outside the peers grid
    python benchmarks/settings.py --strategies lldr --budgets 8,32,128 --set lldr.decay=0.8   # a former default
    python benchmarks/settings.py --report          # only rebuild the section

A target the defaults miss (``benchmarks/_targets.py``) needs the measurements that explain it: would
a higher rate, a gentler decay, a larger rank or more epochs have met it? Each call races the given
strategies with the ``--set`` options on the peers benchmark's draws, seeds, selection and
test examples (``benchmarks/peers.py``), so every run pairs by seed with the strategy's default run and
with ``probe``, both in ``peers.jsonl``. Each row of ``benchmarks/results/settings.jsonl`` records the
options it trained with and the learning rate they resolve to; the section is built from those rows
and the current default grid of ``peers.jsonl``. Every run is stored (resumable); a fresh clone trains
only what the files lack.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402
from _targets import FINE_TUNES, by_seed, compare, state  # noqa: E402
from _variants import default_label, label, lr_of, mean, parser, race_and_export, spec, store_for  # noqa: E402
from peers import KEEP as PEERS_KEEP  # noqa: E402
from peers import RESULTS, adopt_settings, held_out, held_out_text, stored  # noqa: E402

from headstart.data import load_task  # noqa: E402
from headstart.options import parse_options  # noqa: E402
from headstart.race import prepare_race  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "settings.jsonl"
KEEP = tuple(k for k in PEERS_KEEP if k != "peer") + ("best_epoch",)


def run(data: str, strategies: list[str], budgets: list[int], seeds: int, out: Path,
        options: dict[str, object]) -> None:
    """Race the setting's missing runs; its finished runs, from its store and from peers.jsonl (a former default
    asked for by name, ``--set lldr.decay=0.8``, is the very run the peers grid made under that default), are
    exported after each run."""
    task = load_task(data)
    race = spec(data, strategies, budgets, seeds, options)
    committed = {r["key"] for r in read_jsonl(RESULTS) + read_jsonl(OUT) if r.get("key")}
    race_and_export(race, prepare_race(race, task), task, store_for(out, data, options), committed,
                    lambda records: export(data, records, options))


def export(data: str, records: list[dict], options: dict[str, object]) -> None:
    """Add ``records`` with the options and learning rate they trained at (a row of the same key, the same run, is
    replaced; the fields are the peers file's, so a run that becomes a default run can join the peers grid)."""
    merge_jsonl(OUT, [{k: r.get(k) for k in KEEP} | {"data": data, "options": label(options) or "defaults",
                                                    "lr": lr_of(r["strategy"], options)}
                      for r in records],
                order=lambda r: (r["data"], r["strategy"], r["budget"], r["options"], r["seed"]))


def _versus(a: dict[int, float], b: dict[int, float], n_selection: int) -> str:
    cmp = compare(a, b, n_selection)
    if cmp is None:
        return "–"
    diff, noise, _ = cmp
    return f"{diff:+.3f} (±{noise:.3f}, {state(diff, noise)})"


def _option_names(setting: str) -> list[str]:
    """``lora.alpha=32, lora.rank=16`` -> ``["lora.alpha", "lora.rank"]`` (``defaults``: none)."""
    return [] if setting == "defaults" else [part.partition("=")[0].strip() for part in setting.split(",")]


def section(seeds: int) -> str:
    """One line per dataset, strategy, budget and setting; the default's line first."""
    rows = [r for r in read_jsonl(OUT) if r["seed"] < seeds]
    lines = ["| data | strategy | labels/class | setting | selection | vs the default (noise) | vs `probe` (noise) "
             "| test | seconds per run |", "|---|---|---|---|---|---|---|---|---|"]
    order = {name: i for i, name in enumerate(FINE_TUNES)}
    for data in sorted({r["data"] for r in rows}):
        race, _, _ = stored(data, seeds)
        n_selection = held_out(data)[0]
        cells = sorted({(r["strategy"], r["budget"]) for r in rows if r["data"] == data},
                       key=lambda c: (order.get(c[0], len(order)), c[0], c[1]))
        for strategy, budget in cells:
            default = by_seed(race, strategy, budget, "sel_acc")
            probe = by_seed(race, "probe", budget, "sel_acc")
            base = [r for r in race if r["strategy"] == strategy and r["budget"] == budget]
            defaults = {r["key"] for r in base}  # a setting that is today's default is on the default's line
            mine = [r for r in rows if r["data"] == data and (r["strategy"], r["budget"]) == (strategy, budget)
                    and r["key"] not in defaults]
            if base:  # a strategy of the peers grid: its default run is there
                note = "" if len(default) == seeds else f" ({len(default)} of {seeds} seeds)"
                varied = sorted({k for r in mine for k in _option_names(r["options"])})
                shown = default_label(strategy, varied, base[0]["n_train"]) if varied else ""
                lines.append(f"| {data} | `{strategy}` | {budget} | default{f' ({shown})' if shown else ''}{note} | "
                             f"{mean(default.values())} | – | "
                             f"{_versus(default, probe, n_selection)} | {mean(r['test_acc'] for r in base)} | "
                             f"{mean((r['seconds'] for r in base), 0)} |")
            for setting in sorted({r["options"] for r in mine}):
                runs = [r for r in mine if r["options"] == setting]
                sel = {r["seed"]: r["sel_acc"] for r in runs}
                partial = "" if len(sel) == seeds else f" ({len(sel)} of {seeds} seeds)"
                lines.append(f"| {data} | `{strategy}` | {budget} | {setting}{partial} | {mean(sel.values())} | "
                             f"{_versus(sel, default, n_selection)} | {_versus(sel, probe, n_selection)} | "
                             f"{mean(r['test_acc'] for r in runs)} | {mean((r['seconds'] for r in runs), 0)} |")
    return "\n".join(lines)


def main() -> None:
    args = parser(__doc__.split("\n")[0], str(ROOT / "runs" / "settings"), "128",
                  "a training or strategy option (partial.lr=3e-4, lldr.decay=0.9, epochs=40)").parse_args()
    strategies = args.strategies.split(",")
    if not args.report:
        options = parse_options(args.set, strategies)
        for data in args.data.split(","):
            run(data, strategies, [int(b) for b in args.budgets.split(",")], args.seeds, Path(args.out), options)
    if args.no_tables:
        return
    datasets = sorted({r["data"] for r in read_jsonl(OUT)})
    for data in datasets:
        adopt_settings(data, args.seeds)  # a setting that became the default: its runs are the default's
    write_section("settings", "Other settings of the fine-tunes, against their defaults", (
        "Where a fine-tuning target is not met with the defaults (the targets under \"Every strategy\"), the "
        "settings that might have met it, each raced on the peers benchmark's draws: same seeds, same "
        f"selection and test examples ({held_out_text(datasets)}), so every run pairs by seed with the "
        "strategy's default run and with "
        "`probe` (both from `peers.jsonl`). Differences are judged on *selection* accuracy with the race's noise "
        "rule (\"ahead\"/\"behind\" = more than 2 noise units; `benchmarks/_targets.py`). Per-run results: "
        "`benchmarks/results/settings.jsonl` (rebuild with `python benchmarks/settings.py --report`).\n\n"
        + section(args.seeds)))


if __name__ == "__main__":
    main()
