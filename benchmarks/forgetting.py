"""Forgetting: what each guard keeps, at what cost in target accuracy, and tasks learned one after another.

    python benchmarks/forgetting.py --weights      # each guard's weight: rotten-tomatoes at 128/class, full, seed 0
    python benchmarks/forgetting.py                # the guards beside each other (3 seeds)
    python benchmarks/forgetting.py --sequential   # two tasks in a row: the accuracy matrix per setting
    python benchmarks/forgetting.py --table        # only rebuild the section

Races (MiniLM-L6 at 64 tokens, 1,000 selection and test examples, as the peers benchmark; MobileNetV2
at 64 px for images): every run records its target accuracy and ``kept``, the pretrained competence
it kept (``race/forgetting.py``: a probe on 20newsgroups for text, agreement with the ImageNet
predictions for images), and the seconds that measurement took.

- ``--weights``: ``full`` with each guard at weights around its default, one seed: the default is the
  largest weight whose selection accuracy stays within noise of no guard (it keeps the most there).
- the grid: rotten-tomatoes and vader-tweets at 128 labels per class, 3 seeds: ``full``, ``lldr`` and
  ``lora`` with no guard, ``l2sp``, ``ewc`` and ``lwf``; ``probe``; and plain fine-tuning (``full`` with
  ``head_init=random``) beside LP-FT (``full``) to test whether starting from the probe's head forgets
  less; mobilenetv2 on mnist-5k at 64/class and 64 px, ``full`` with each guard.
- ``--sequential`` (``headstart continual``'s engine): digits 0–4 then 5–9 (class-incremental, 64 labels
  per class, mobilenetv2 at 64 px) and vader-tweets then rotten-tomatoes (domain-incremental: fresh is
  positive, rotten negative; 128 per class, MiniLM): no guard, each guard, replay at 1, 5 and 20 per
  class on seed 0, then seeds 1 and 2 for no guard, the best guard and replay 5.

Rows land in ``benchmarks/results/forgetting.jsonl`` as each run or sequence ends; stores live in
``~/.cache/headstart/bench-forgetting/`` and a fresh clone resumes from the committed rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402
from _rows import race_rows  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "forgetting.jsonl"
GUARDS = ("l2sp", "ewc", "lwf")
WEIGHTS = {"l2sp": (0.001, 0.01, 0.1, 1.0, 10.0, 100.0), "ewc": (0.001, 0.01, 0.1, 1.0, 10.0, 100.0),
           "lwf": (0.001, 0.01, 0.1, 1.0, 10.0)}
TEXT = ("rotten-tomatoes", "vader-tweets")
SEEDS = 3
SELECTION = 1000  # selection examples per race (the peers benchmark's limit)
KEEP = ("strategy", "budget", "seed", "sel_acc", "test_acc", "seconds", "trainable_params", "delta_relative",
        "forgetting")


def _entries(strategies: tuple[str, ...]) -> list[str]:
    return [f"{s}[guard={g}]" if g else s for s in strategies for g in (None, *GUARDS)]


TEXT_ENTRIES = ["probe", *_entries(("full", "lldr", "lora")), "full[head_init=random]"]


def _race(data: str, entries: list[str], budget: int, seeds: int) -> None:
    race_rows(RESULTS, lambda entry, seed: _key(data, entry, budget, seed), data, entries, budget, seeds, KEEP,
              "bench-forgetting")


def _key(data: str, entry: str, budget: int, seed: int) -> str:
    return f"race|{data}|{budget}|{entry}|{seed}"


def weights() -> None:
    entries = ["full"] + [f"full[guard={g},guard_weight={w:g}]" for g in GUARDS for w in WEIGHTS[g]]
    _race("rotten-tomatoes", entries, 128, 1)


def _text_default(guard: str) -> float:
    """The weight ``guard`` resolves to on MiniLM (no previous task, no pretraining classifier)."""
    from headstart.terms import create_term
    from headstart.terms.lwf import SIMILARITY_WEIGHT

    return SIMILARITY_WEIGHT if guard == "lwf" else create_term(guard).default_weight


def reuse_sweep() -> None:
    """The grid's ``full[guard=g]`` on rotten-tomatoes, seed 0, is the sweep's run at g's default weight: the same
    draws, seed and training, the weight only spelled out. Copy those rows rather than train them again."""
    rows = read_jsonl(RESULTS)
    have = {r["key"] for r in rows}
    copies = []
    for guard in GUARDS:
        spelled = f"full[guard={guard},guard_weight={_text_default(guard):g}]"
        row = next((r for r in rows if r["key"] == _key("rotten-tomatoes", spelled, 128, 0)), None)
        key = _key("rotten-tomatoes", f"full[guard={guard}]", 128, 0)
        if row is not None and key not in have:
            copies.append({**row, "key": key, "strategy": f"full[guard={guard}]", "copied_from": row["key"]})
    if copies:
        merge_jsonl(RESULTS, copies, order=lambda r: r["key"])


def grid() -> None:
    reuse_sweep()
    for data in TEXT:
        _race(data, TEXT_ENTRIES, 128, SEEDS)
    _race("mnist-5k", ["probe", *_entries(("full",))], 64, SEEDS)


# -- tasks one after another ---------------------------------------------------------------------------------
def _restricted(task, classes: list[str], rename: dict[str, str] | None = None):
    """The examples of ``classes`` only, as a task of just those classes (renamed by ``rename``)."""
    from headstart.data import Task

    keep = [c for c in classes]
    index = np.flatnonzero(np.isin(np.asarray(task.classes)[task.labels], keep))
    names = tuple((rename or {}).get(c, c) for c in keep)
    labels = np.array([keep.index(task.classes[int(y)]) for y in task.labels[index]])
    inputs = task.inputs[index] if isinstance(task.inputs, np.ndarray) else [task.inputs[i] for i in index]
    return Task(inputs, labels, names, task.modality, task.name, task.source)


def _pairs():
    from headstart.data import load_task

    digits = load_task("digits")
    tweets, rotten = load_task("vader-tweets"), load_task("rotten-tomatoes")
    return {
        "digits 0-4 → 5-9": (["digits-0-4", "digits-5-9"],
                             [_restricted(digits, list("01234")), _restricted(digits, list("56789"))],
                             "mobilenetv2", {"image_size": 64}, 64),
        "vader-tweets → rotten-tomatoes": (["vader-tweets", "rotten-tomatoes"],
                                           [tweets, _restricted(rotten, ["rotten", "fresh"],
                                                                {"rotten": "negative", "fresh": "positive"})],
                                           "minilm-l6", {"max_length": 64}, 128),
    }


def _sequence(pair: str, names: list[str], tasks: list, backbone: str, options: dict, budget: int, setting,
              seed: int) -> None:
    """One setting's sequence for one seed, unless its row is committed."""
    from headstart.continual import ContinualSpec, run_continual
    from headstart.fetch import cache_dir

    key = f"seq|{pair}|{setting.label}|{seed}"
    if key in {r["key"] for r in read_jsonl(RESULTS)}:
        return
    spec = ContinualSpec(tasks=names, backbone=backbone, strategy="full", settings=[setting], budget=budget,
                         seeds=seed + 1, test_limit=1000, backbone_options=options)
    out = cache_dir() / "bench-forgetting" / "sequential" / pair.split()[0]
    (row,) = run_continual(spec, tasks, out, only_seeds=[seed])
    merge_jsonl(RESULTS, [{**row, "key": key, "kind": "sequence", "pair": pair}], order=lambda r: r["key"])
    print(key, f"avg {row['avg_acc']:.3f} bwt {row['bwt']:+.3f}", flush=True)


def sequential() -> None:
    from headstart.continual import Setting

    first = [Setting(), *(Setting(g) for g in GUARDS), *(Setting(replay=n) for n in (1, 5, 20))]
    for pair, how in _pairs().items():
        for setting in first:  # seed 0: every setting, replay at three sizes
            _sequence(pair, *how, setting, 0)
        best = _best_guard([r for r in read_jsonl(RESULTS) if r.get("pair") == pair])
        for setting in (Setting(), Setting(best), Setting(replay=5)):  # seeds 1 and 2 for three of them
            for seed in (1, 2):
                _sequence(pair, *how, setting, seed)


def _best_guard(rows: list[dict]) -> str:
    """The guard with the best average accuracy on seed 0."""
    seed0 = {r["setting"]: r for r in rows if r["seed"] == 0}
    return max(GUARDS, key=lambda g: seed0[g]["avg_acc"])


# -- the section ---------------------------------------------------------------------------------------------
def _mean(values):
    """Mean and spread, the spread None for one value (one seed has none to show)."""
    values = [v for v in values if v is not None]
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None) if values else None


def _cell(pair, fmt: str = ".3f") -> str:
    if pair is None:
        return "–"
    return f"{pair[0]:{fmt}}" if pair[1] is None else f"{pair[0]:{fmt}} ± {pair[1]:{fmt}}"


def _weight_order(strategy: str) -> tuple[str, float]:
    """``full`` first, then each guard's entries by their weight as a number (``1`` before ``10``)."""
    options = dict(part.split("=") for part in strategy.partition("[")[2].rstrip("]").split(",") if "=" in part)
    return options.get("guard", ""), float(options.get("guard_weight", 0))


def _noise(a: dict, b: dict) -> float:
    """The binomial error of a difference of two selection accuracies on ``SELECTION`` examples each (the race's
    noise of one pair)."""
    from headstart.race.analysis import _noise as race_noise

    return race_noise([a["sel_acc"]], [b["sel_acc"]], SELECTION)


def _chosen_weights(sweep: list[dict]) -> list[str]:
    """Per guard: the largest weight whose selection accuracy is within the race's noise of no guard (the
    binomial error of a difference on the 1,000 selection examples; one seed has no spread of its own)."""
    plain = next((r for r in sweep if r["strategy"] == "full"), None)
    if plain is None:
        return []
    lines = []
    for guard in GUARDS:
        at = sorted((r for r in sweep if _weight_order(r["strategy"])[0] == guard),
                    key=lambda r: _weight_order(r["strategy"]))
        if len(at) < len(WEIGHTS[guard]):
            continue
        level = [r for r in at if r["sel_acc"] >= plain["sel_acc"] - _noise(plain, r)]
        if level:
            r = level[-1]
            kept = (r.get("forgetting") or {}).get("kept")
            lines.append(f"- `{guard}`: {_weight_order(r['strategy'])[1]:g} (selection {r['sel_acc']:.3f} against "
                         f"no guard's {plain['sel_acc']:.3f} ± {_noise(plain, r):.3f}; keeps {kept:.1%})")
        else:
            lines.append(f"- `{guard}`: every weight swept falls below no guard's selection accuracy by more than the "
                         "noise")
    return lines


def table(rows: list[dict]) -> str:
    races = [r for r in rows if r["kind"] == "race"]
    parts = []
    weights_rows = [r for r in races if "guard_weight" in r["strategy"] or (r["data"] == "rotten-tomatoes"
                                                                             and r["strategy"] == "full"
                                                                             and r["seed"] == 0)]
    if weights_rows:
        lines = ["| entry | selection acc | test acc | kept | s/run |", "|---|---|---|---|---|"]
        for r in sorted(weights_rows, key=lambda r: _weight_order(r["strategy"])):
            if r["seed"] != 0 or r["data"] != "rotten-tomatoes" or r["budget"] != 128:
                continue
            kept = (r.get("forgetting") or {}).get("kept")
            lines.append(f"| `{r['strategy']}` | {r['sel_acc']:.3f} | {r['test_acc']:.3f} | "
                         f"{'–' if kept is None else f'{kept:.1%}'} | {r['seconds']:.0f} |")
        chosen = _chosen_weights([r for r in weights_rows if r["seed"] == 0 and r["data"] == "rotten-tomatoes"])
        parts.append("**Guard weights** (rotten-tomatoes, 128 labels per class, `full`, seed 0): the default is "
                     "the largest weight whose selection accuracy stays within noise of no guard.\n\n"
                     + "\n".join(lines)
                     + ("\n\nThe defaults this sweep sets:\n\n" + "\n".join(chosen) if chosen else ""))
    grid_rows = [r for r in races if "guard_weight" not in r["strategy"]]
    order = {e: i for i, e in enumerate(TEXT_ENTRIES)}
    for data in (*TEXT, "mnist-5k"):
        at = [r for r in grid_rows if r["data"] == data]
        entries = sorted(dict.fromkeys(r["strategy"] for r in at), key=lambda e: order.get(e, len(order)))
        if not entries:
            continue
        lines = ["| entry | seeds | selection acc | test acc | kept | drift | s/run | s to measure kept |",
                 "|---|---|---|---|---|---|---|---|"]
        for e in entries:
            rs = [r for r in at if r["strategy"] == e]
            f = [r.get("forgetting") or {} for r in rs]
            lines.append(f"| `{e}` | {len(rs)} | {_cell(_mean([r['sel_acc'] for r in rs]))} | "
                         f"{_cell(_mean([r['test_acc'] for r in rs]))} | "
                         f"{_cell(_mean([x.get('kept') for x in f]), '.1%')} | "
                         f"{_cell(_mean([x.get('drift') for x in f]))} | "
                         f"{statistics.fmean(r['seconds'] for r in rs):.0f} | "
                         f"{_cell(_mean([x.get('seconds') for x in f]), '.1f')} |")
        budget = at[0]["budget"]
        parts.append(f"**{data}**, {budget} labels per class:\n\n" + "\n".join(lines))
    seqs = [r for r in rows if r["kind"] == "sequence"]
    for pair in dict.fromkeys(r["pair"] for r in seqs):
        at = [r for r in seqs if r["pair"] == pair]
        lines = ["| setting | seeds | average accuracy | backward transfer | first task after the second | "
                 "s/sequence | saved MB |", "|---|---|---|---|---|---|---|"]
        for setting in dict.fromkeys(r["setting"] for r in at):
            rs = [r for r in at if r["setting"] == setting]
            lines.append(f"| {setting} | {len(rs)} | {_cell(_mean([r['avg_acc'] for r in rs]))} | "
                         f"{_cell(_mean([r['bwt'] for r in rs]))} | {_cell(_mean([r['matrix'][1][0] for r in rs]))} |"
                         f" {statistics.fmean(sum(r['seconds']) for r in rs):.0f} | "
                         f"{statistics.fmean(r['saved_bytes'] for r in rs) / 1e6:.2f} |")
        parts.append(f"**{pair}** (`full`, one model learning both in order):\n\n" + "\n".join(lines))
    if not parts:
        return "Not measured yet (`python benchmarks/forgetting.py --weights`, then without flags, then --sequential)."
    return "\n\n".join(parts) + "\n\nRows: `benchmarks/results/forgetting.jsonl`."


def write() -> None:
    write_section("forgetting", "Forgetting: guards, what a run kept, tasks one after another",
                  table(read_jsonl(RESULTS)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", action="store_true", help="each guard's weight around its default")
    ap.add_argument("--sequential", action="store_true", help="two tasks in a row, per setting")
    ap.add_argument("--table", action="store_true", help="only rebuild BENCHMARKS.md's section from the rows")
    args = ap.parse_args()
    if not args.table:
        weights() if args.weights else sequential() if args.sequential else grid()
    write()


if __name__ == "__main__":
    main()
