"""``headstart continual``: tasks learned one after another, the accuracy matrix for each way of keeping them."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_continual_command"]


def _cmd_continual(args: argparse.Namespace) -> None:
    import sys

    from .cli_train import DEFAULT_BACKBONE, backbone_options, check_out, train_options
    from .continual import ContinualSpec, continual_table, parse_settings, run_continual, summarize_continual
    from .data import load_task
    from .options import options_for

    out = check_out(args.out)
    settings = parse_settings(args.settings)
    options = options_for(train_options(args), args.strategy)
    tasks = [load_task(d, text_column=args.text_column, label_column=args.label_column, encoding=args.encoding,
                       strict=args.strict, normalize_labels=args.normalize_labels) for d in args.data]
    args.backbone = args.backbone or DEFAULT_BACKBONE[tasks[0].modality]
    spec = ContinualSpec(tasks=list(args.data), backbone=args.backbone, strategy=args.strategy, settings=settings,
                         budget=args.budget, seeds=args.seeds, split_seed=args.split_seed, test_limit=args.test_limit,
                         backbone_options=backbone_options(args), train_options=options)
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    rows = run_continual(spec, tasks, out, progress=say)
    summary = summarize_continual(rows)
    if args.json:
        print(json.dumps({"tasks": spec.tasks, "strategy": spec.strategy, "budget": str(spec.budget),
                          "settings": summary, "runs": rows}, indent=2))
        return
    print(f"{spec.strategy} on {spec.backbone}, {spec.budget} labels per class of each task, {spec.seeds} seed(s); "
          "test parts only scored, never used to choose.")
    print(continual_table(summary, spec.tasks))
    print(f"\nrows: {out / 'results.jsonl'} (re-run the same command to resume)")


def add_continual_command(sub: Any, data_options: Any) -> None:
    from .cli_train import add_common_training_flags

    p = sub.add_parser("continual", help="learn tasks one after another and measure what each way of learning them "
                                         "forgets (accuracy matrix, backward transfer)")
    p.add_argument("data", nargs="+", help="the tasks in the order they arrive: named examples, CSV/TSV/JSONL/.npz "
                   "files or image folders of one modality; new classes grow the head (class-incremental), the same "
                   "classes carry it on (domain-incremental)")
    add_common_training_flags(p)
    p.add_argument("--strategy", default="full", help="how every step trains (default full; a fine-tune takes the "
                   "guards)")
    p.add_argument("--settings", default="none,l2sp,ewc,lwf,replay=5",
                   help="comma-separated ways of learning the sequence: none, a guard against forgetting (l2sp, ewc, "
                        "lwf), replay=N (a rehearsal buffer of N examples per earlier class), or both (ewc+replay=5); "
                        "default none,l2sp,ewc,lwf,replay=5")
    p.add_argument("--budget", default="all", help="labelled examples per class of each task, validation included, "
                   "or 'all' (default)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per setting (draws and training; default 1)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of each task's pool/selection/test split")
    p.add_argument("--test-limit", type=int, help="score on at most this many test examples of each task")
    p.add_argument("--out", required=True, help="folder for results.jsonl (resumable)")
    data_options(p)
    p.set_defaults(func=_cmd_continual)
