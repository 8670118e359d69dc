"""Domain shift: in-domain and target accuracy of source-only and adapted models, and the deployment gap.

    python benchmarks/domain_shift.py            # the two pairs: every entry, 3 seeds
    python benchmarks/domain_shift.py --gaps     # the deployment gap of every named example pair
    python benchmarks/domain_shift.py --table    # only rebuild the section
    python benchmarks/domain_shift.py --pair digits   # one pair's races

Two pairs with the same labels, labelled source → unlabelled target: vader-movies → vader-tweets
(text, 128 labels per class, MiniLM-L6 at 64 tokens) and digits → mnist-5k (8×8 digits upscaled to
64 px, 64 per class, MobileNetV2). Each is one race on the source with ``--target`` the target's
inputs (labels never read) and ``--ood-test`` the target with its labels, scored only: the usual
unsupervised-domain-adaptation protocol, in which the unlabelled target examples an adaptation sees
are the ones it is scored on (transductive). Entries: source-only ``probe``, ``full`` and plain
fine-tuning (``full[head_init=random]``), then ``coral``, ``dann``, ``iw``, ``bn-adapt`` (images) and
``tent`` (at its default rate, 1e-5, and at 1e-4 and 1e-3, which is where its default comes from), each
with seconds and trainable parameters. The unsupervised choice (importance-weighted
validation, which needs no target label) is set against the oracle (the entry best on the labelled
target). ``--gaps``: the proxy A-distance and MMD between every pair of named examples with shared
labels, and, as a gap figure only, between pairs whose labels differ (mnist-5k and fashion-mnist).

Rows land in ``benchmarks/results/domain_shift.jsonl`` as each run ends; stores live in
``~/.cache/headstart/bench-domain-shift/`` and a fresh clone resumes from the committed rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402
from _rows import race_rows  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "domain_shift.jsonl"
PAIRS = {"vader-movies → vader-tweets": ("vader-movies", "vader-tweets", 128),
         "digits → mnist-5k": ("digits", "mnist-5k", 64)}
#: tent at its default rate and the two decades above: the measurement its default comes from
ENTRIES = ["probe", "full", "full[head_init=random]", "coral", "dann", "iw", "bn-adapt", "tent", "tent[tent_lr=0.0001]",
           "tent[tent_lr=0.001]"]
SEEDS = 3
KEEP = ("strategy", "budget", "seed", "sel_acc", "test_acc", "ood_acc", "iwv_acc", "target_entropy", "seconds",
        "trainable_params")
#: pairs the deployment gap is measured between: shared labels, then (as a figure only) labels that differ
GAPS = [("vader-movies", "vader-tweets"), ("rotten-tomatoes", "vader-movies"), ("rotten-tomatoes", "vader-tweets"),
        ("digits", "mnist-5k"), ("mnist-5k", "fashion-mnist")]


def races(only: str | None = None) -> None:
    for pair, (source, target, budget) in PAIRS.items():
        if only and only not in pair:
            continue
        entries = [e for e in ENTRIES if e != "bn-adapt" or source in ("digits", "mnist-5k")]
        race_rows(RESULTS, lambda entry, seed, pair=pair: f"race|{pair}|{entry}|{seed}", source, entries, budget,
                  SEEDS, KEEP, "bench-domain-shift", target=target, ood_test=target)


def gaps() -> None:
    from peers import MAX_LENGTH

    from headstart.data import load_task, make_splits
    from headstart.fetch import cache_dir
    from headstart.race.domains import deployment_gap
    from headstart.train import FeatureCache

    cache = FeatureCache(cache_dir() / "features")
    for source, target in GAPS:
        key = f"gap|{source}|{target}"
        if key in {r["key"] for r in read_jsonl(RESULTS)}:
            continue
        a, b = load_task(source), load_task(target)
        image = a.modality == "image"
        backbone, options = ("mobilenetv2", {"image_size": 64}) if image else ("minilm-l6", {"max_length": MAX_LENGTH})
        gap = deployment_gap(backbone, options, a.subset(make_splits(a).pool), b, cache, against="target")
        row = {"key": key, "kind": "gap", "source": source, "target": target, "backbone": backbone,
               "shared_labels": set(a.classes) == set(b.classes), **gap}
        merge_jsonl(RESULTS, [row], order=lambda r: r["key"])
        print(key, f"A-distance {gap['a_distance']:.2f}, MMD {gap['mmd']:.3f}", flush=True)


def _mean(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:  # one seed has no spread to show
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def _against_source_only(at: list[dict], entry: str, n: int) -> str:
    """``entry`` against ``full`` (the source-only recipe every adaptation adds its term to) on the target, paired
    by seed, by the race's noise rule."""
    from _targets import compare, state

    if entry == "full":
        return "(the baseline)"
    mine = {r["seed"]: r["ood_acc"] for r in at if r["strategy"] == entry}
    base = {r["seed"]: r["ood_acc"] for r in at if r["strategy"] == "full"}
    cmp = compare(mine, base, n)
    if cmp is None:
        return "–"
    diff, noise, k = cmp
    return f"{diff:+.3f} ± {noise:.3f}: {state(diff, noise)}" + ("" if k == SEEDS else f" ({k} seed{'s' * (k > 1)})")


def _complete_seeds(at: list[dict]) -> list[int]:
    """The seeds every entry has run (choices compare like with like)."""
    entries = {r["strategy"] for r in at}
    return sorted(s for s in {r["seed"] for r in at} if {r["strategy"] for r in at if r["seed"] == s} == entries)


def _choices(at: list[dict], seeds: list[int]) -> str:
    """Per seed, whether importance-weighted validation (no target label) picks the entry best on the target."""
    agree = 0
    for seed in seeds:
        rs = [r for r in at if r["seed"] == seed]
        oracle = max(r["ood_acc"] for r in rs)
        pick = max(rs, key=lambda r: r["iwv_acc"])
        agree += pick["ood_acc"] == oracle
    return f"seed by seed, it picks the oracle's entry (or one as good on the target) on {agree} of {len(seeds)}"


def _spans(at: list[dict]) -> str:
    """How far the target accuracy moves from seed to seed, for the source-only recipe and the probe."""
    parts = []
    for entry in ("full", "probe"):
        values = [r["ood_acc"] for r in at if r["strategy"] == entry]
        if len(values) > 1:
            parts.append(f"`{entry}`'s {min(values):.3f}–{max(values):.3f}")
    return f"Seed to seed (a new draw of the labels and a new training order), the target accuracy spans " \
           f"{' and '.join(parts)}." if parts else ""


def table(rows: list[dict]) -> str:
    from peers import TEST_LIMIT

    parts = []
    for pair, (source, target, budget) in PAIRS.items():
        at = [r for r in rows if r["key"].startswith(f"race|{pair}|")]
        if not at:
            continue
        lines = ["| entry | seeds | in-domain test | target (OOD) | vs `full` on the target | IWV (no target label) | "
                 "target entropy | s/run | trainable |", "|---|---|---|---|---|---|---|---|---|"]
        entries = list(dict.fromkeys(r["strategy"] for r in at))
        for entry in entries:
            rs = [r for r in at if r["strategy"] == entry]
            lines.append(f"| `{entry}` | {len(rs)} | {_mean([r['test_acc'] for r in rs])} | "
                         f"{_mean([r['ood_acc'] for r in rs])} | {_against_source_only(at, entry, TEST_LIMIT)} | "
                         f"{_mean([r['iwv_acc'] for r in rs])} | "
                         f"{_mean([r['target_entropy'] for r in rs])} | "
                         f"{statistics.fmean(r['seconds'] for r in rs):.0f} | "
                         f"{max(r['trainable_params'] for r in rs):,} |")
        seeds = _complete_seeds(at)
        whole = [r for r in at if r["seed"] in seeds]  # the oracle and the pick: like with like
        means = {e: (statistics.fmean(r["ood_acc"] for r in whole if r["strategy"] == e),
                     statistics.fmean(r["iwv_acc"] for r in whole if r["strategy"] == e)) for e in entries}
        oracle = max(means, key=lambda e: means[e][0])
        pick = max(means, key=lambda e: means[e][1])
        k = len(seeds)
        parts.append(
            f"**{pair}** ({budget} labels per class of {source}; {target} unlabelled for adaptation and labelled for "
            "scoring only):\n\n" + "\n".join(lines) + f"\n\nOn the {k} seed{'s' * (k != 1)} every entry has run, the "
            f"oracle (best on the labelled target) is `{oracle}` ({means[oracle][0]:.3f}); importance-weighted "
            f"validation picks `{pick}` ({means[pick][0]:.3f} on the target): they "
            f"{'agree' if pick == oracle else 'disagree'}; {_choices(at, seeds)}. \"vs `full`\": the paired "
            f"difference on the target's {TEST_LIMIT:,} examples and its noise (the race's rule: ahead or behind by "
            f"more than two noise units). The test-time entries (`bn-adapt`, `tent`) are scored after adapting to the "
            f"target everywhere: their in-domain and IWV columns are what the adapted model does on the source. "
            f"{_spans(at)}")
    gap_rows = [r for r in rows if r["kind"] == "gap"]
    if gap_rows:
        lines = ["| labelled | deployment | shared labels | proxy A-distance | MMD | examples |",
                 "|---|---|---|---|---|---|"]
        for r in gap_rows:
            lines.append(f"| {r['source']} | {r['target']} | {'yes' if r['shared_labels'] else 'no (a figure only)'} | "
                         f"{r['a_distance']:.2f} | {r['mmd']:.3f} | {r['n_labelled']:,} / {r['n_deployment']:,} |")
        parts.append("**The deployment gap** on the pretrained features (MiniLM-L6 for text, MobileNetV2 at 64 px for "
                     "images): proxy A-distance 0 when a domain classifier cannot tell the two apart, 2 when it always "
                     "can; MMD 0 for one distribution.\n\n" + "\n".join(lines))
    if not parts:
        return "Not measured yet (`python benchmarks/domain_shift.py`, `--gaps`)."
    return "\n\n".join(parts) + "\n\nRows: `benchmarks/results/domain_shift.jsonl`."


def write() -> None:
    write_section("domain_shift", "Domain shift: source-only against adapted, and the deployment gap",
                  table(read_jsonl(RESULTS)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaps", action="store_true", help="the deployment gap of every named example pair")
    ap.add_argument("--table", action="store_true", help="only rebuild BENCHMARKS.md's section from the rows")
    ap.add_argument("--pair", help="only the pair whose name holds this (e.g. digits)")
    args = ap.parse_args()
    if not args.table:
        gaps() if args.gaps else races(args.pair)
    write()


if __name__ == "__main__":
    main()
