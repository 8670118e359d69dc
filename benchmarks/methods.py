"""The extension surface's three proof methods, first measurements: ``ia3``, the ``l2sp`` guard and ``coral``.

    python benchmarks/methods.py                    # every missing run, then the section
    python benchmarks/methods.py --parts ia3        # one part (rerun, ia3, l2sp, coral)
    python benchmarks/methods.py --report           # only rebuild the section from the committed rows

- **ia3** beside ``lora`` and ``full`` on rotten-tomatoes and vader-tweets at 8, 32 and 128 labels per
  class, 3 seeds, on the peers benchmark's draws, seeds, selection and test examples
  (``benchmarks/peers.py``): ``lora``'s and ``full``'s runs are that grid's (``peers.jsonl``, same keys),
  so every ``ia3`` run pairs by seed with them. Saved size: what ``Adapter.save`` keeps for each strategy
  on MiniLM (counted from the model, no training).
- **l2sp**: ``full`` with ``guard=l2sp`` (its default weight) at 128 labels per class on both datasets,
  paired by seed with ``full``'s peers-grid run; Δθ shows how far each moved the body.
- **coral**: labels from vader-movies (128 per class), deployed on vader-tweets. The tweets are split
  once (stratified, seed 0) into an unlabelled half (``--target``: its labels are never read) and a
  labelled half that is the test set, so no test example is among the target examples. Selection comes
  from the movie snippets (the labelled domain: what a user could choose on). ``coral`` races beside its
  source-only recipe ``full`` on the same draws.

Rows go to ``benchmarks/results/methods.jsonl`` (one per run, with its key; a partial run adds rows and
never drops them); every run is stored under ``runs/methods`` (resumable).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402
from _targets import by_seed, compare, state  # noqa: E402
from _variants import mean, spec  # noqa: E402
from peers import MAX_LENGTH, RESULTS, TEST_LIMIT, held_out, stored  # noqa: E402
from peers import STRATEGIES as PEERS_STRATEGIES  # noqa: E402

from headstart.data import load_task, make_splits  # noqa: E402
from headstart.race import RaceSpec, ResultStore, prepare_race, run_race  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "methods.jsonl"
KEEP = ("data", "strategy", "budget", "seed", "sel_acc", "test_acc", "seconds", "trainable_params", "n_train",
        "n_val", "n_test", "key", "headstart", "epochs", "stop_reason", "delta_l2", "part")
DATASETS = ("rotten-tomatoes", "vader-tweets")
L2SP = "full[guard=l2sp]"
#: runs that shared the machine with the unit test suite while they trained (their seconds overstate the cost;
#: their accuracies do not depend on it): key -> why, said under their table while those rows stand
CONTENDED = {"3a7f9880f30ed6b29187": "full seed 0", "3340941c99fd62f5ef9b": "coral seed 0",
             "670f4d9899bc9ddfdc32": "full seed 2", "6cd9f7080ead0d5b185e": "coral seed 2"}


def _export(part: str, data: str, records: list[dict]) -> None:
    merge_jsonl(OUT, [{k: r.get(k) for k in KEEP} | {"data": data, "part": part} for r in records],
                order=lambda r: (r["part"], r["data"], r["budget"], r["strategy"], r["seed"]))


def _race(part: str, data: str, race: RaceSpec, out: Path) -> None:
    """Race what the store under ``out`` lacks; after each run, every finished run of the grid joins the JSONL file
    (read back from the store: the record handed to ``on_run_end`` carries no key)."""
    prepared = prepare_race(race, load_task(race.data))
    keys = {race.run_key(run, prepared.fingerprint, prepared.test_fingerprint, prepared.target_fingerprint)
            for run in race.runs()}

    def export(*_) -> None:
        with ResultStore(out / "results.sqlite") as store:
            _export(part, data, store.records(keys))

    run_race(race, out, task=prepared.task, data=prepared, progress=False, on_run_end=export)
    export()
    print(f"{part} on {data}: done", flush=True)


def run_ia3(out: Path, seeds: int) -> None:
    for data in DATASETS:
        _race("ia3", data, spec(data, ["ia3"], [8, 32, 128], seeds, {}), out / "ia3" / data)


def run_l2sp(out: Path, seeds: int) -> None:
    """``full`` runs again beside its guarded variant (its peers-grid key): its Δθ, which peers.jsonl does not keep."""
    for data in DATASETS:
        _race("l2sp", data, spec(data, ["full", L2SP], [128], seeds, {}), out / "l2sp" / data)


def run_rerun(out: Path, seeds: int) -> None:
    """Seed 0 of every strategy of the peers grid at 8 labels per class, trained again under today's code: the
    same keys as the committed rows, so the numbers must come out the same."""
    for data in DATASETS:
        _race("rerun", data, spec(data, list(PEERS_STRATEGIES), [8], 1, {}), out / "rerun" / data)


def coral_files(out: Path) -> tuple[Path, Path]:
    """vader-tweets in two stratified halves: unlabelled target examples (no label column) and the test set."""
    tweets = load_task("vader-tweets")
    # two halves, stratified, exact duplicates on one side: the pool is the target, the "selection" half the test
    splits = make_splits(tweets, seed=0, selection_fraction=0.5, test_fraction=0.0)
    folder = out / "coral" / "files"
    folder.mkdir(parents=True, exist_ok=True)
    target, test = folder / "tweets-target.csv", folder / "tweets-test.csv"
    import csv

    with target.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        w.writerows([tweets.inputs[i]] for i in splits.pool)
    with test.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([tweets.inputs[i], tweets.classes[tweets.labels[i]]] for i in splits.selection)
    return target, test


def coral_spec(out: Path, seeds: int) -> RaceSpec:
    target, test = coral_files(out)
    return RaceSpec("vader-movies", "minilm-l6", strategies=["full", "coral"], budgets=[128], seeds=seeds,
                    test_limit=TEST_LIMIT, test=str(test), target=str(target),
                    backbone_options={"max_length": MAX_LENGTH})


def run_coral(out: Path, seeds: int) -> None:
    _race("coral", "vader-movies", coral_spec(out, seeds), out / "coral" / "race")


def saved_parameters(strategy: str) -> int:
    """How many numbers ``Adapter.save`` keeps for ``strategy`` on MiniLM (two classes), from the model itself."""
    from headstart.backbones import create_backbone
    from headstart.persist import _saved_tensors
    from headstart.strategies import create_strategy, prepare_model
    from headstart.train import AdaptedModel, build_param_groups

    s = create_strategy(strategy)
    model = AdaptedModel(create_backbone("minilm-l6", max_length=MAX_LENGTH), 2)
    prepare_model(model, s)
    build_param_groups(model, s.stages()[-1].plan(model.n_blocks), 1e-4, 1e-4, 0.0)
    return sum(t.numel() for t in _saved_tensors(SimpleNamespace(model_=model, strategy_=s)).values())


def _row(cells: list[object]) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else mean(values)


def _versus(a: dict[int, float], b: dict[int, float], n: int) -> str:
    cmp = compare(a, b, n)
    return "–" if cmp is None else f"{cmp[0]:+.3f} (±{cmp[1]:.3f}, {state(cmp[0], cmp[1])})"


def ia3_section(seeds: int) -> str:
    rows = [r for r in read_jsonl(OUT) if r["part"] == "ia3" and r["seed"] < seeds]
    saved = {s: saved_parameters(s) for s in ("ia3", "lora", "full")}
    lines = ["| data | labels/class | strategy | selection | test | vs `lora` (selection, noise) | trainable | "
             "saved numbers | seconds per run |", "|---|---|---|---|---|---|---|---|---|"]
    for data in DATASETS:
        race, _, _ = stored(data, seeds)
        everything = race + [r for r in rows if r["data"] == data]
        for budget in (8, 32, 128):
            lora = by_seed(everything, "lora", budget, "sel_acc")
            for name in ("ia3", "lora", "full"):
                runs = [r for r in everything if r["strategy"] == name and r["budget"] == budget]
                if not runs:
                    continue
                sel = {r["seed"]: r["sel_acc"] for r in runs}
                versus = "–" if name == "lora" else _versus(sel, lora, held_out(data)[0])
                trainable = int(np.median([r["trainable_params"] for r in runs]))
                lines.append(_row([data, budget, f"`{name}`", _cell(list(sel.values())),
                                   _cell([r["test_acc"] for r in runs]), versus, f"{trainable:,}", f"{saved[name]:,}",
                                   mean((r["seconds"] for r in runs), 0)]))
    return "\n".join(lines)


def l2sp_section(seeds: int) -> str:
    rows = [r for r in read_jsonl(OUT) if r["part"] == "l2sp" and r["seed"] < seeds]
    lines = ["| data | labels/class | strategy | selection | test | vs `full` (selection, noise) | Δθ (L2) | "
             "seconds per run |", "|---|---|---|---|---|---|---|---|"]
    for data in DATASETS:
        base = by_seed([r for r in rows if r["data"] == data], "full", 128, "sel_acc")
        for name in ("full", L2SP):
            runs = [r for r in rows if r["data"] == data and r["strategy"] == name]
            if not runs:
                continue
            sel = {r["seed"]: r["sel_acc"] for r in runs}
            versus = "–" if name == "full" else _versus(sel, base, held_out(data)[0])
            lines.append(_row([data, 128, f"`{name}`", _cell(list(sel.values())), _cell([r["test_acc"] for r in runs]),
                               versus, mean(r["delta_l2"] for r in runs), mean((r["seconds"] for r in runs), 0)]))
    return "\n".join(lines)


def rerun_section() -> str:
    """Each re-run beside the committed row of the same key (``peers.jsonl`` or, for ``full``, ``methods.jsonl``)."""
    committed = {r["key"]: r for r in read_jsonl(RESULTS) if r.get("key")}
    rows = [r for r in read_jsonl(OUT) if r["part"] == "rerun"]
    if not rows:
        return "Not measured yet."
    # where a re-run differs, the code before the change (the commit in the row) run again today, same key
    before = {r["key"].partition(":")[2]: r for r in read_jsonl(OUT) if r["part"] == "before"}
    lines = ["| data | strategy | committed selection / test | re-run selection / test | same | the code before, "
             "today |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["data"], PEERS_STRATEGIES.index(r["strategy"]))):
        c, b = committed.get(r["key"]), before.get(r["key"])
        was = "–" if c is None else f"{c['sel_acc']:.3f} / {c['test_acc']:.3f}"
        same = "no row of this key" if c is None else (
            "yes" if (c["sel_acc"], c["test_acc"]) == (r["sel_acc"], r["test_acc"]) else "**no**")
        then = "" if b is None else f"{b['sel_acc']:.3f} / {b['test_acc']:.3f} ({b['code']})"
        lines.append(_row([r["data"], f"`{r['strategy']}`", was, f"{r['sel_acc']:.3f} / {r['test_acc']:.3f}", same,
                           then]))
    return "\n".join(lines)


def coral_section(seeds: int) -> str:
    rows = [r for r in read_jsonl(OUT) if r["part"] == "coral" and r["seed"] < seeds]
    if not rows:
        return "Not measured yet."
    n_test = rows[0].get("n_test") or 0
    lines = ["| source → deployment | labels/class | strategy | selection (movies) | test (tweets) | "
             "vs `full` on test (noise) | seconds per run |", "|---|---|---|---|---|---|---|"]
    full = {r["seed"]: r["test_acc"] for r in rows if r["strategy"] == "full"}
    for name in ("full", "coral"):
        runs = [r for r in rows if r["strategy"] == name]
        if runs:
            test = {r["seed"]: r["test_acc"] for r in runs}
            versus = "–" if name == "full" else _versus(test, full, n_test)
            lines.append(_row(["vader-movies → vader-tweets", 128, f"`{name}`", _cell([r["sel_acc"] for r in runs]),
                               _cell(list(test.values())), versus, mean((r["seconds"] for r in runs), 0)]))
    shared = [f"{CONTENDED[r['key']]} ({r['seconds']:.0f} s)" for r in rows if r["key"] in CONTENDED]
    alone = [f"{r['strategy']} seed {r['seed']} {r['seconds']:.0f} s" for r in rows if r["key"] not in CONTENDED]
    if shared:
        lines.append(f"\nSeconds: {', '.join(shared)} trained while the unit tests shared the machine for part or all "
                     f"of the run, so the means overstate the cost; the runs that had it alone: {', '.join(alone)}.")
    return "\n".join(lines)


TEXT = """\
### The existing strategies, re-run under the extension surface

Seed 0 of every strategy of the peers grid at 8 labels per class, trained again after the training path
moved onto the fit context, terms and the parameter-efficient base (same keys as the committed rows, so
the same settings, bf16 autocast where the machine has it, as when they were measured):

{rerun}

Where a re-run differs from its committed row, it is by one of the 1,000 selection (or test) examples,
and the code before the change (the commit named), trained again today on this machine with the same
key, gives exactly the re-run's numbers: the difference is this machine's arithmetic against the one the
committed rows came from, not the change (for `partial:2` the two codes' training losses were also compared
epoch by epoch: equal to float32 precision).

The three methods that prove the extension surface, each one new file plus its registration
(`strategies/ia3.py`, `terms/l2sp.py`, `terms/coral.py`). First measurements; the parameter-efficient,
forgetting and domain-shift work completes them. Same protocol as the peers benchmark: MiniLM, 64 tokens,
the peers grid's draws and seeds, {held_out}. "vs" columns are paired by seed and judged with the race's
noise rule (more than 2 noise units = ahead/behind). Per-run rows: `benchmarks/results/methods.jsonl`
(rebuild with `python benchmarks/methods.py --report`).

### `ia3` beside `lora` and `full`

{ia3}

Trainable: the median count of parameters that train (head included); saved numbers: what `Adapter.save`
keeps (head, injected tensors, or every trained block).

### `full` with and without the `l2sp` guard (weight 0.01)

{l2sp}

### `coral` against its source-only recipe `full`

Labels from vader-movies, deployment on vader-tweets: half of the tweets are the unlabelled target
examples (`--target`, labels never read), the other half (capped at {limit:,}) the test set; selection
is from the movies (what a user can choose on). The "vs" column compares test accuracy (the deployment
domain's), paired by seed; choosing between the two stays on selection data.

{coral}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="rerun,ia3,l2sp,coral")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "runs" / "methods"))
    p.add_argument("--report", action="store_true", help="only rebuild the section from what is committed")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    if not args.report:
        runners = {"rerun": run_rerun, "ia3": run_ia3, "l2sp": run_l2sp, "coral": run_coral}
        for part in args.parts.split(","):
            runners[part](out, args.seeds)
    held = "; ".join(f"{d}: {held_out(d)[0]:,} selection and {held_out(d)[1]:,} test examples" for d in DATASETS)
    write_section("methods", "Extension surface: ia3, the l2sp guard, coral", TEXT.format(
        held_out=held, ia3=ia3_section(args.seeds), l2sp=l2sp_section(args.seeds), coral=coral_section(args.seeds),
        limit=TEST_LIMIT, rerun=rerun_section()))


if __name__ == "__main__":
    main()
