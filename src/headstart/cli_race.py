"""``headstart compare``, ``headstart advise`` and ``headstart demo``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .cli_train import DEFAULT_BACKBONE, add_common_training_flags, backbone_options, train_options

__all__ = ["DEMO", "add_race_commands"]

#: The built-in example: a small race that shows every kind of strategy in about five minutes on 2 CPU cores.
#: The fine-tunes plan 30 optimiser steps instead of their default 100 (the one setting trimmed for time);
#: scratch-small is the from-scratch baseline (the random-init MiniLM, far costlier, is in `compare`'s default).
DEMO: dict[str, Any] = {
    "data": "rotten-tomatoes", "backbone": "minilm-l6",
    "strategies": ["scratch-small", "probe", "partial:2", "full", "lora"],
    "budgets": [8, 32], "seeds": 2, "test_limit": 400,
    "train_options": {"min_steps": 30}, "backbone_options": {"max_length": 64},
}


def _budgets(text: str | None) -> list[int | None]:
    from .data import parse_budget

    if not text:
        return []
    return [parse_budget(b) for b in text.split(",") if b.strip()]


def _table(rows: list[Any], best: dict[Any, str]) -> str:
    from .race.analysis import accuracy_text, budget_label

    w = max([13, *(len(r.strategy) for r in rows)])  # "probe on efficientnet-lite0" in a race over backbones
    ood = any(r.ood_mean is not None for r in rows)
    iwv = any(r.iwv_mean is not None for r in rows)
    lines = [f"{'strategy':<{w + 1}} {'labels/class':>12} {'selection':>9} {'test acc':>15} {'test macro-F1':>15} "
             f"{'trainable':>12} {'s/run':>7} {'Δθ':>8} {'kept':>6}"
             + (f" {'OOD acc':>15} {'gap':>7}" if ood else "") + (f" {'IWV':>6}" if iwv else "")]
    for r in rows:
        mark = "*" if best.get(r.budget) == r.strategy else " "
        kept = "—" if r.kept_mean is None else f"{r.kept_mean:.0%}"
        extra = ""
        if ood:
            extra += (f" {'—':>15} {'—':>7}" if r.ood_mean is None else
                      f" {accuracy_text(r.ood_mean, r.ood_std):>15} {r.ood_mean - r.acc_mean:>+7.3f}")
        if iwv:
            extra += f" {'—' if r.iwv_mean is None else f'{r.iwv_mean:.3f}':>6}"
        lines.append(f"{r.strategy:<{w}}{mark} {budget_label(r.budget):>12} {r.sel_acc_mean:>9.3f} "
                     f"{accuracy_text(r.acc_mean, r.acc_std):>15} {accuracy_text(r.f1_mean, r.f1_std):>15} "
                     f"{r.trainable_params:>12,} {r.seconds:>7.1f} "
                     f"{r.delta_l2:>8.3f} {kept:>6}{extra}")
    if ood:
        lines.append("OOD acc: accuracy on the deployment test set (--ood-test), gap: OOD minus in-domain test; "
                     "reported only, never used to choose")
    if iwv:
        lines.append("IWV: selection accuracy weighted towards the --target examples (importance-weighted "
                     "validation): an estimate for the deployment domain that needs none of its labels")
    what = next((r.kept_what for r in rows if r.kept_what), None)
    if what:
        lines.append(f"kept: how much pretrained competence a run kept, {what} (— : nothing pretrained moved)")
    return "\n".join(lines)


def race(spec_kwargs: dict[str, Any], out: Path, *, advice: bool, quiet: bool, as_json: bool,
         load_options: dict[str, Any] | None = None, task: Any = None, report_to: str | None = None,
         executor: Any = None) -> None:
    """Advise (once), run what is missing of the grid, write the report, print the outcome."""
    from .race import RaceSpec, ResultStore, advise, prepare_race, run_race, summarize
    from .race.analysis import (
        best_per_budget,
        choice_line,
        negative_transfer,
        recommend,
    )
    from .race.findings import deployment_lines, least_forgetting
    from .race.grid import entry_label, expected_cells
    from .report import advice_check, gap_line, write_report
    from .tracking import make_trackers

    spec = RaceSpec(**spec_kwargs)
    trackers = make_trackers(report_to, out)  # a missing tracking library fails before any work
    data = prepare_race(spec, task, load_options=load_options)
    if advice:  # on the first candidate when several backbones race
        first = spec.backbones[0] if spec.backbones else None
        name, options = spec.backbone_of(first)
        with ResultStore(out / "results.sqlite") as store:
            saved = store.get_meta("advice")
            # judged at the race's largest budget, where its recommendation is made (None: every label)
            top = None if None in spec.budgets else max(spec.budgets)
            wanted = {"backbone": name, "backbone_options": options, "split_seed": spec.split_seed,
                      "data": data.fingerprint, "budget": top}
            if saved is None or any(saved.get(k) != v for k, v in wanted.items()):
                if not quiet:
                    print(f"advising on {data.task.name} with {first or name} (frozen features of the pool only)...",
                          file=sys.stderr)
                found = advise(data.task, name, backbone_options=options, seed=spec.split_seed,
                               pool=data.splits.pool, budget=top).to_dict()
                store.set_meta("advice", {**found, **wanted, "entry": entry_label(found["strategy"], first)})
    if spec.skipped() and not quiet:
        print(spec.skipped(), file=sys.stderr)
    records = run_race(spec, out, data=data, progress=not quiet, trackers=trackers, executor=executor)
    report = write_report(out)
    if as_json:  # the summary the report wrote: one place builds it
        summary = json.loads((out / "results.json").read_text(encoding="utf-8"))
        print(json.dumps({**summary, "report": str(report)}, indent=2))
        return
    rows = summarize(records, spec.entries())
    verdict = negative_transfer(records)
    rec = recommend(rows, verdict, expected_cells(spec))
    chose = choice_line(len(data.selection), len(data.test), data.test.source if data.test_fingerprint else None,
                        spec.cv_folds if data.choose == "cv" else None)
    print(chose)
    print(_table(rows, best_per_budget(rows)))
    print("(* best at that budget on selection accuracy)\n")
    print(verdict.message)
    forgot = least_forgetting(rows)
    if forgot:
        print(forgot)
    for line in deployment_lines(rows):
        print(line)
    with ResultStore(out / "results.sqlite") as store:
        gap = store.get_meta("deployment_gap")
    if gap:
        print(gap_line(gap))
    if rec is not None:
        print(f"\nrecommendation: {rec.strategy}")
        for reason in rec.reasons:
            print(f"  - {reason}")
    with ResultStore(out / "results.sqlite") as store:
        check = advice_check(store.get_meta("advice"), rec.strategy if rec else None)
    if check:
        print(check)
    print(f"\nreport: {report}")


def _cmd_compare(args: argparse.Namespace) -> None:
    from .backbones.options import candidate_label
    from .cli_train import check_out
    from .data import load_task
    from .race import DEFAULT_STRATEGIES, ResultStore
    from .race.executors import make_executor
    from .strategies import split_entries

    check_out(args.out)
    options = train_options(args)  # bad --set values fail before the data are read
    backbone_options(args)
    executor = make_executor(args.executor, address=args.address, threads=args.threads, device=args.device)
    if (Path(args.out) / "results.sqlite").is_file():  # a damaged or unwritable store fails before any work
        ResultStore(Path(args.out) / "results.sqlite").close()
    load_options = {"text_column": args.text_column, "label_column": args.label_column, "encoding": args.encoding,
                    "strict": args.strict, "normalize_labels": args.normalize_labels}
    candidates = _candidates(args)  # bad names and options refused before the data are read
    task = load_task(args.data, **load_options)
    backbone = candidates[0][0] if candidates else args.backbone or DEFAULT_BACKBONE[task.modality]
    strategies = split_entries(args.strategies) if args.strategies else list(DEFAULT_STRATEGIES)
    spec = {"data": args.data, "backbone": backbone, "strategies": strategies, "budgets": _budgets(args.budgets),
            "seeds": args.seeds, "split_seed": args.split_seed, "test_limit": args.test_limit, "test": args.test,
            "target": args.target, "train_options": options, "backbone_options": backbone_options(args, backbone),
            "backbones": [candidate_label(*c) for c in candidates], "choose": args.choose, "cv_folds": args.cv_folds,
            "reference": args.reference, "ood_test": args.ood_test}
    race(spec, Path(args.out), advice=not args.no_advice, quiet=args.quiet, as_json=args.json,
         load_options=load_options, task=task, report_to=args.report_to, executor=executor)


def _candidates(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """``--backbones a,b[image_size=64]`` as (name, options) pairs, the common --image-size / --max-length checked
    against each (none: one backbone, ``--backbone``)."""
    from .backbones.options import parse_candidate
    from .errors import HeadstartError
    from .strategies import split_entries

    if not args.backbones:
        return []
    if args.backbone:
        raise HeadstartError("Give --backbone (one) or --backbones (several side by side), not both.")
    candidates = [parse_candidate(c) for c in split_entries(args.backbones)]
    for name, _ in candidates:
        backbone_options(args, name)
    return candidates


def _cmd_demo(args: argparse.Namespace) -> None:
    if not args.quiet:
        print("headstart demo: a race of scratch-small, probe, partial:2, full and lora on rotten-tomatoes "
              "with minilm-l6, at 8 and 32 labels per class, 2 seeds (about five minutes on 2 CPU cores)",
              file=sys.stderr if args.json else sys.stdout)
    race(dict(DEMO), Path(args.out), advice=True, quiet=args.quiet, as_json=args.json, report_to=args.report_to)


def _cmd_advise(args: argparse.Namespace) -> None:
    from .data import load_task
    from .race import advise

    backbone_options(args)
    task = load_task(args.data, text_column=args.text_column, label_column=args.label_column,
                     encoding=args.encoding, strict=args.strict, normalize_labels=args.normalize_labels)
    backbone = args.backbone or DEFAULT_BACKBONE[task.modality]
    options = backbone_options(args, backbone)
    a = advise(task, backbone, subset=args.subset, backbone_options=options, seed=args.split_seed,
               budget=args.labels_per_class)
    if args.json:
        print(json.dumps(a.to_dict(), indent=2))
        return
    print(f"start with: {a.strategy}   ({a.size} data, {a.gap} domain; {a.seconds:.0f}s)")
    for reason in a.reasons:
        print(f"  - {reason}")


def _cmd_rank(args: argparse.Namespace) -> None:
    from .data import load_task
    from .race.rank import format_ranking, parse_candidate, rank_backbones
    from .strategies import split_entries

    candidates = [parse_candidate(c) for c in split_entries(args.backbones)]  # bad names refused before any work
    task = load_task(args.data, text_column=args.text_column, label_column=args.label_column,
                     encoding=args.encoding, strict=args.strict, normalize_labels=args.normalize_labels)

    def progress(row) -> None:
        if not args.json:
            print(f"  {row.label}: {'not usable' if row.error else 'scored'} in {row.seconds:.0f}s", file=sys.stderr)

    rows = rank_backbones(task, candidates, subset=args.subset, seed=args.split_seed, on_candidate=progress,
                          by=args.by)
    print(json.dumps([r.to_dict() for r in rows], indent=2) if args.json else format_ranking(rows, args.data, args.by))


def _cmd_report(args: argparse.Namespace) -> None:
    from .report import write_report

    page = write_report(Path(args.folder))
    if args.json:
        print((page.parent / "results.json").read_text(encoding="utf-8"))
        return
    print(f"report: {page}")


def add_race_commands(sub: Any, data_options: Any) -> None:
    p = sub.add_parser("compare", help="race strategies × label budgets × seeds on identical splits; write a report")
    p.add_argument("data", help="a named example, a CSV/TSV/JSONL/.npz file, or an image folder")
    add_common_training_flags(p)
    p.add_argument("--strategies", help="comma-separated (default: scratch,probe,partial:2,full,lora); an entry "
                   "may carry options of its own, so variants race side by side: full,full[head_init=random]")
    p.add_argument("--budgets", help="labelled examples per class, validation included; comma-separated, 'all' "
                   "allowed (default: sized to the data). 0: only what needs no label (zero-shot, prototype with "
                   "prior=names, contrastive with synthetic); 1 to 3: nothing held out, so only what needs no "
                   "validation runs; the others are named and start later")
    p.add_argument("--backbones", help="race two or more backbones side by side instead of --backbone: every strategy "
                   "runs on each, in one store and one report (entries read 'probe on efficientnet-lite0'); each may "
                   "carry options of its own: mobilenetv2[image_size=64],efficientnet-lite0 (`headstart rank` says "
                   "which to race)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per strategy and budget (default 3)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the pool/selection/test split (default 0)")
    p.add_argument("--choose", choices=("auto", "selection", "cv"), default="auto",
                   help="how the race chooses: on a held-out selection part (a fifth of the data), or by 5-fold "
                   "cross-validation within each run's labels, repeated over the seeds (every label trains in some "
                   "fits and scores in another; a test part is still held out when every class has 10 examples). "
                   "auto (default): cross-validation when the selection part would hold fewer than 10 examples of "
                   "some class")
    p.add_argument("--cv-folds", type=int, default=5, help="folds of --choose cv (default 5; at most the smallest "
                   "class's labels in a run)")
    p.add_argument("--reference", default="auto",
                   help="what 'kept' (how much pretrained competence a run that moved the body kept) is measured on, "
                        "for backbones without their pretraining classifier: a named example or file of another task "
                        "(auto, default: 20newsgroups for text, digits for images, unless the race is on it), or none; "
                        "MobileNetV2 and EfficientNet-Lite are measured against their own ImageNet predictions")
    p.add_argument("--ood-test", metavar="FILE",
                   help="a labelled test set from the deployment domain (same columns as DATA): every run is also "
                        "scored there, beside its in-domain test accuracy, with the gap; only reported, never used to "
                        "choose. With --target or alone it also measures the deployment gap")
    p.add_argument("--test", help="your own test file (same format and columns as DATA): the test set, never "
                   "sampled from DATA; selection comes from DATA")
    p.add_argument("--target", help="unlabelled examples of the deployment domain (a file like DATA, labels not needed "
                   "and never read; a folder of images): what domain-adaptation strategies (coral) train on")
    p.add_argument("--test-limit", type=int, help="score on at most this many selection and test examples each "
                   "(a fixed subset in the natural class proportions)")
    p.add_argument("--no-advice", action="store_true", help="skip the advisor's pre-race recommendation")
    p.add_argument("--out", required=True, help="results folder (re-running resumes; a changed grid adds runs)")
    p.add_argument("--report-to", help="also log every run to mlflow and/or tensorboard (comma-separated)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where runs execute: here one after another (default), or as Ray tasks (headstart[ray])")
    p.add_argument("--address", help="with --executor ray: a running Ray cluster ('auto', or HOST:PORT from `ray start "
                   "--head`); default: a private Ray instance on this machine")
    p.add_argument("--threads", type=int, help="torch threads per run (with Ray also the CPUs each run asks for; "
                   "default: torch's own for local runs, 1 per Ray task)")
    data_options(p)
    p.set_defaults(func=_cmd_compare, seed=None)

    p = sub.add_parser("advise", help="which recipe to start with, from frozen features only (about a minute)")
    p.add_argument("data", help="a named example, a CSV/TSV/JSONL/.npz file, or an image folder")
    p.add_argument("--backbone", help="a registered backbone (default minilm-l6 / mobilenetv2)")
    p.add_argument("--subset", type=int, default=1000, help="examples to measure on (default 1000)")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the split; only its pool is looked at (default 0)")
    p.add_argument("--image-size", type=int, help="input resolution of a vision backbone")
    p.add_argument("--labels-per-class", type=int, metavar="N",
                   help="the labels per class you will train with, if fewer than the data hold (default: all of them)")
    p.add_argument("--json", action="store_true", help="print JSON")
    data_options(p)
    p.set_defaults(func=_cmd_advise)

    p = sub.add_parser("rank", help="which backbones to race: LogME, H-score and probe accuracy on frozen features of "
                                    "the pool (about a minute each)",
                       description="Score candidate backbones on frozen features of the same stratified subset of the "
                       "pool (the selection and test parts are never looked at): LogME (You et al. 2021), the "
                       "regularised H-score (Bao et al. 2019, Ledoit-Wolf shrinkage as in Ibrahim et al. 2022) and a "
                       "5-fold probe's accuracy. Candidates are ordered by the probe's accuracy (--by), the score that "
                       "ordered the packaged vision backbones best on mnist-5k, digits and fashion-mnist; the best two "
                       "are printed with the `compare --backbones` command that races them. BENCHMARKS.md measures "
                       "how well each score predicts fine-tuned accuracy.")
    p.add_argument("data", help="a named example, a CSV/TSV/JSONL/.npz file, or an image folder")
    p.add_argument("--backbones", required=True, help="comma-separated candidates, each with options of its own: "
                   "minilm-l6,hf:BAAI/bge-small-en-v1.5 or mobilenetv2[image_size=64],efficientnet-lite0")
    p.add_argument("--subset", type=int, default=1000, help="pool examples to measure on (default 1000)")
    p.add_argument("--by", choices=("probe_acc", "mean_rank", "logme", "hscore"), default="probe_acc",
                   help="the score the candidates are ordered by (default probe_acc; every score is printed)")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the split; only its pool is looked at (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON")
    data_options(p)
    p.set_defaults(func=_cmd_rank)

    p = sub.add_parser("report", help="rebuild a race folder's report from its store (also while compare still runs)")
    p.add_argument("folder", help="a folder written by `headstart compare --out`")
    p.add_argument("--json", action="store_true", help="print results.json")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("demo", help="the main job on the built-in example: a small race and its report")
    p.add_argument("--out", default="runs/demo", help="results folder (default runs/demo)")
    p.add_argument("--report-to", help="also log every run to mlflow and/or tensorboard (comma-separated)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the result table as JSON")
    p.set_defaults(func=_cmd_demo)
