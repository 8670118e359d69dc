"""``headstart fit``, and the training flags every command that trains shares."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .backbones.options import check_backbone_options
from .errors import HeadstartError
from .paths import given_path
from .train.config import PRECISIONS

__all__ = ["DEFAULT_BACKBONE", "add_train_commands"]

DEFAULT_BACKBONE = {"text": "minilm-l6", "image": "mobilenetv2"}


def train_options(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig/strategy options from the common flags plus ``--set KEY=VALUE`` (typed by their declarations)."""
    from .options import check_options, parse_options
    from .race import DEFAULT_STRATEGIES

    names = ("epochs", "lr", "batch_size", "seed", "device", "precision")
    opts = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if args.augment:
        opts["augment"] = True
    if getattr(args, "strategy", None):
        strategies = [args.strategy]
    elif getattr(args, "strategies", None):
        strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    else:
        strategies = list(DEFAULT_STRATEGIES)
    options = {**opts, **parse_options(args.set, strategies)}
    if getattr(args, "class_descriptions", None):
        from .data.descriptions import read_class_descriptions
        from .options import options_for
        from .strategies import create_strategy, split_entry
        from .train.config import TrainConfig

        described = [s for s in strategies  # as configured, the entry would read them
                     if create_strategy(s, **TrainConfig.from_options(options_for(options, s))[1]).uses_descriptions]
        if not described:
            raise HeadstartError("--class-descriptions describes the classes for zero-shot, prototype with "
                                 "prior=names and contrastive with synthetic texts, and none of "
                                 f"{', '.join(strategies)} is one; add one, or drop the flag.")
        descriptions = read_class_descriptions(args.class_descriptions)
        for spec in described:
            options[f"{split_entry(spec)[0]}.descriptions"] = descriptions
    check_options(options, strategies)  # every value in its declared range, before any data are read
    return options


#: the command line's own numbers (not options of TrainConfig, a strategy or a backbone, which their declarations
#: check): attribute -> (flag, what check_value allows). ``check_flags`` checks every one a command has, first.
FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "seeds": ("--seeds", {"low": 1, "integer": True, "example": 3}),
    "split_seed": ("--split-seed", {"low": 0, "integer": True, "example": 0}),
    "test_limit": ("--test-limit", {"low": 1, "integer": True, "example": 1000}),
    "cv_folds": ("--cv-folds", {"low": 2, "integer": True, "example": 5}),
    "threads": ("--threads", {"low": 1, "integer": True, "example": 2}),
    "subset": ("--subset", {"low": 10, "integer": True, "example": 1000}),
    "labels_per_class": ("--labels-per-class", {"low": 1, "integer": True, "example": 32}),
    "port": ("--port", {"low": 1, "high": 65535, "integer": True, "example": 8765}),
    "atol": ("--atol", {"low": 0.0, "low_open": True, "example": 1e-4}),
    "replay": ("--replay", {"low": 0, "integer": True, "example": 5}),
}

#: comma-separated flags: attribute -> an example
LISTS = {"strategies": "probe,full", "budgets": "8,32", "backbones": "mobilenetv2,efficientnet-lite0"}


def check_flags(args: argparse.Namespace) -> None:
    """Every numeric flag of the command in its range (an unset one is None: its default applies)."""
    from .declare import check_value

    for name, (flag, allowed) in FLAGS.items():
        if getattr(args, name, None) is not None:
            check_value(name, getattr(args, name), "", flag=flag, **allowed)
    for name, example in LISTS.items():  # given but empty ("$STRATEGIES" unset) is not "the default"
        value = getattr(args, name, None)
        if isinstance(value, str) and not value.strip(" ,"):
            flag = "--" + name.replace("_", "-")
            raise HeadstartError(f"{flag} is empty ({value!r}); name at least one, e.g. {flag} {example}, or leave "
                                 "the flag out for the default.")


def backbone_options(args: argparse.Namespace, backbone: str | None = None) -> dict[str, Any]:
    """``--image-size`` / ``--max-length`` as given (0 included: refused, never read as "the default"), checked
    against ``backbone`` (default: ``--backbone``) when one is known."""
    opts = {k: getattr(args, k) for k in ("image_size", "max_length") if getattr(args, k, None) is not None}
    backbone = backbone or getattr(args, "backbone", None)
    if backbone:
        check_backbone_options(backbone, opts, flags=True)
    return opts


def check_out(out: str) -> Path:
    """``--out`` must be a folder (created if missing): checked before any work, not after training."""
    path = given_path(out, "--out")
    if path.exists() and not path.is_dir():
        raise HeadstartError(f"--out {out} is a file; give a folder (it is created if missing).")
    return path


def _cmd_fit(args: argparse.Namespace) -> None:
    from .adapter import Adapter
    from .data import draw, load_task, load_unlabelled, make_splits, parse_budget
    from .data.splits import check_budgets
    from .options import options_for
    from .tracking import fit_record, make_trackers

    check_out(args.out)
    options = options_for(train_options(args), args.strategy)  # bad --set values fail before the data are read
    backbone_options(args)
    trackers = make_trackers(args.report_to, args.out)
    task = load_task(args.data, text_column=args.text_column, label_column=args.label_column,
                     encoding=args.encoding, strict=args.strict, normalize_labels=args.normalize_labels)
    splits = make_splits(task, seed=args.split_seed)
    check_budgets(task, splits, [parse_budget(args.budget)])
    train_idx, val_idx = draw(task, splits, parse_budget(args.budget), seed=args.seed or 0)
    previous = _continued(args, task)
    args.backbone = args.backbone or (previous.backbone if previous is not None else DEFAULT_BACKBONE[task.modality])
    backbone_opts = backbone_options(args)
    params = {"data": args.data, "backbone": args.backbone, "strategy": args.strategy, "budget": args.budget,
              "seed": args.seed or 0, "options": options, **({"from": args.from_model} if previous else {})}
    callbacks = [t.start(f"fit {args.strategy}", params) for t in trackers]
    continual = {"replay": args.replay or 0, **({"incremental": args.incremental} if args.incremental else {})}
    if previous is not None:  # the saved model, continued: its body, head and rehearsal buffer; this fit's settings
        from .train.config import TrainConfig

        cfg, strategy_options = TrainConfig.from_options(options)
        adapter = previous.set_params(strategy=args.strategy, strategy_options=strategy_options, warm_start=True,
                                      progress=not args.quiet, callbacks=callbacks, **continual,
                                      **{k: getattr(cfg, k) for k in cfg.to_dict()})
    else:
        adapter = Adapter(args.backbone, args.strategy, backbone_options=backbone_opts, progress=not args.quiet,
                          callbacks=callbacks, **continual, **options)
    target = None if args.target is None else load_unlabelled(args.target, task.classes, task.modality,
                                                              text_column=args.text_column, encoding=args.encoding)
    if parse_budget(args.budget) == 0:  # no labels: zero-shot from the class names alone
        adapter.fit(None, classes=task.classes)
    else:
        if not len(val_idx):  # a budget below VALIDATED_FROM holds nothing out: a strategy that validates is refused
            from .strategies import create_strategy
            from .strategies.runner import check_validation
            from .train.config import TrainConfig

            cfg, strategy_options = TrainConfig.from_options(options)
            check_validation(create_strategy(args.strategy, **strategy_options), cfg, None)
        adapter.fit(task.subset(train_idx), val=task.subset(val_idx) if len(val_idx) else None, target=target)
    from .train.distributed import is_main_process

    if not is_main_process():  # under `accelerate launch`: every process trained the same model; one writes it
        return
    test = task.subset(splits.test)
    accuracy = adapter.score(test)
    for t in trackers:
        t.finish({**fit_record(adapter.result_), "test_acc": accuracy})
    out = adapter.save(args.out)
    r = adapter.result_
    summary = {"data": task.name, "backbone": args.backbone, "strategy": adapter.strategy_.spec,
               "train": len(train_idx), "val": len(val_idx), "test": len(test), "test_accuracy": accuracy,
               "best_epoch": r.best_epoch, "stop_reason": r.stop_reason.value, "seconds": round(r.seconds, 1),
               "trainable_params": r.trainable_params, "delta_l2": round(r.delta.get("l2", 0.0), 4),
               "saved_to": str(out)}
    (Path(out) / "test.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{adapter.strategy_.spec} on {args.backbone}: test accuracy {accuracy:.3f} on {len(test):,} held-out "
          f"examples (trained on {len(train_idx):,}, validated on {len(val_idx):,})")
    print(f"best epoch {r.best_epoch}, stopped: {r.stop_reason.value}, {r.seconds:.1f}s, "
          f"{r.trainable_params:,} trainable parameters, delta-theta {r.delta.get('l2', 0.0):.4f}")
    print(f"saved to {out}")


def _continued(args: argparse.Namespace, task: Any) -> Any:
    """The saved model ``--from`` names, loaded to continue on ``task`` (None without ``--from``); its backbone is the
    one the new fit uses, so ``--backbone`` and the backbone options must not say otherwise."""
    from .adapter import Adapter

    if args.from_model is None:
        if args.incremental:
            raise HeadstartError("--incremental says what a continued fit does with new classes; continue a saved "
                                 "model with --from MODEL, or leave the flag out.")
        return None
    previous = Adapter.load(args.from_model)
    if previous.modality_ != task.modality:
        raise HeadstartError(f"--from {args.from_model} is a {previous.modality_} model, but {args.data} holds "
                             f"{task.modality}s; continue it on {previous.modality_} data, or fit a new model.")
    given = [flag for flag, value in (("--backbone", args.backbone), ("--image-size", args.image_size),
                                      ("--max-length", args.max_length)) if value is not None]
    if given:
        raise HeadstartError(f"{given[0]} cannot change the model --from {args.from_model} continues: it keeps its "
                             "backbone and preprocessing; leave the flag out.")
    return previous


def add_common_training_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default=None,
                   help="a registered backbone (`headstart backbones`); default minilm-l6 / mobilenetv2")
    p.add_argument("--epochs", type=int, help="maximum epochs (strategy default if omitted)")
    p.add_argument("--lr", type=float, help="learning rate of the body (strategy default if omitted)")
    p.add_argument("--batch-size", type=int, help="examples per step (default 16)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="training forward pass: auto (default: bf16 where the hardware has it natively), bf16, fp32")
    p.add_argument("--augment", action="store_true", help="label-preserving augmentation (bypasses the cache)")
    p.add_argument("--image-size", type=int, help="input resolution of a vision backbone (default: native)")
    p.add_argument("--max-length", type=int, help="maximum tokens per text (default 128)")
    p.add_argument("--class-descriptions", metavar="FILE", help="one line per class, 'class: "
                   "description | another': the classes in your words instead of their names, for zero-shot, "
                   "prototype's prior=names and contrastive's synthetic texts")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any TrainConfig or strategy option, e.g. --set rank=4 --set patience=3")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print JSON")


def add_train_commands(sub: Any, data_options: Any) -> None:
    from .strategies import strategy_help

    p = sub.add_parser("fit", help="adapt a backbone to a dataset with one strategy and save the model")
    p.add_argument("data", help="a named example, a CSV/TSV/JSONL/.npz file, or an image folder")
    add_common_training_flags(p)
    p.add_argument("--strategy", default="probe", help=f"one of: {strategy_help()} (`headstart options NAME`)")
    p.add_argument("--budget", default="all", help="labelled examples per class to train on, validation included, "
                   "or 'all' (0: none, for zero-shot or contrastive with synthetic; 1 to 3: nothing held out, for "
                   "strategies that need no validation: probe, prototype, contrastive)")
    p.add_argument("--seed", type=int, help="seed of the budget draw and the training (default 0)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/val/test split (default 0)")
    p.add_argument("--out", required=True, help="folder to save the adapted model in")
    p.add_argument("--target", help="unlabelled examples of the deployment domain, for a domain-adaptation strategy "
                   "(coral): a file like DATA (labels never read) or a folder of images")
    p.add_argument("--from", dest="from_model", metavar="MODEL",
                   help="continue a saved model on DATA (continual learning): new classes grow its head, the same "
                        "classes carry it on; a guard (--strategy 'full[guard=ewc]') keeps what it computed before")
    p.add_argument("--replay", type=int, help="keep this many labelled examples per class in the saved model, and "
                   "rehearse the ones --from MODEL kept beside DATA's (default 0: none)")
    p.add_argument("--incremental", choices=("class", "task"),
                   help="with --from, new classes: 'class' (one head over every class seen; default) or 'task' (a new "
                        "head, the old one kept)")
    p.add_argument("--report-to", help="also log the run to mlflow and/or tensorboard (comma-separated)")
    data_options(p)
    p.set_defaults(func=_cmd_fit)
