"""``headstart predict`` (one model, or several on one body) and ``headstart export``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .cli_train import check_out
from .errors import HeadstartError
from .paths import given_path

__all__ = ["add_predict_commands", "expand_inputs"]


def expand_inputs(values: list[str], modality: str, text_column: str | None, encoding: str) -> list[Any]:
    """Texts, table files, image files and folders, by what they are; a path that names nothing is an error,
    never a text to classify."""
    from .data.load import TABLE_SUFFIXES
    from .data.readers import IMAGE_SUFFIXES, read_input_texts

    file_like = TABLE_SUFFIXES | IMAGE_SUFFIXES | {".txt", ".json", ".npz", ".npy", ".parquet", ".xlsx"}
    out: list[Any] = []
    for v in values:
        p = Path(v)
        looks_like_path = "\n" not in v and len(v) < 4096 and (p.suffix.lower() in file_like or v.endswith(("/", "\\")))
        if p.is_dir():
            if modality == "text":
                raise HeadstartError(f"{v} is a folder, but this model reads text; pass texts or a CSV/TSV/JSONL file.")
            images = [str(f) for f in sorted(p.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
            if not images:
                raise HeadstartError(f"{v} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}).")
            out.extend(images)
        elif p.is_file() and p.suffix.lower() in TABLE_SUFFIXES and modality == "text":
            out.extend(read_input_texts(p, text_column=text_column, encoding=encoding))
        elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and modality == "image":
            out.append(v)
        elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            raise HeadstartError(f"{v} is an image, but this model reads text; pass texts or a CSV/TSV/JSONL file.")
        elif p.is_file() or looks_like_path:
            what = "texts or a CSV/TSV/JSONL file" if modality == "text" else "image files or a folder of them"
            state = "does not exist" if not p.exists() else f"is not something this {modality} model reads"
            raise HeadstartError(f"{v} {state}; pass {what}.")
        elif modality == "image":
            raise HeadstartError(f"{v[:60]!r} is not an image file; pass image files or a folder of them.")
        else:
            out.append(v)
    if not out:
        raise HeadstartError("Nothing to predict: give texts, a CSV/JSONL file, image files or a folder of images.")
    return out


def _cmd_predict(args: argparse.Namespace) -> None:
    from .adapter import Adapter
    from .strategies import split_entries

    bank = args.adapters is not None
    folders = split_entries(args.adapters) if bank else args.items[:1]
    items = args.items if bank else args.items[1:]
    for folder in folders:  # the positional MODEL, or each --adapters folder (an empty one is never ".")
        given_path(folder, "an --adapters folder" if bank else "MODEL")
    for item in items:
        given_path(item, "an input", "a text, a file or a folder")
    if bank and not folders:
        raise HeadstartError("--adapters is empty; name the model folders, e.g. --adapters tickets/,sentiment/.")
    if args.source is not None and args.adapt is None:
        raise HeadstartError("--source goes with --adapt: it gives examples of the training data, onto whose "
                             "BatchNorm statistics --adapt maps the --target examples' (conv nets).")
    if (args.adapt is None) != (args.target is None):
        raise HeadstartError("--adapt and --target go together: --adapt tent (or bn-adapt) adapts the model to the "
                             "unlabelled examples --target FILE gives, before predicting.")
    if bank:
        if args.adapt:
            raise HeadstartError("--adapt adapts one model's body, and --adapters share one body between several; "
                                 "adapt one model at a time (headstart predict MODEL --adapt ... --target ...).")
        return _predict_bank(folders, items, args)
    if not items:
        raise HeadstartError("Nothing to predict: give the model folder, then texts, a CSV/JSONL file, image files or "
                             "a folder of images (or --adapters a/,b/ then the inputs).")
    adapter = Adapter.load(folders[0])
    inputs = expand_inputs(items, adapter.modality_, args.text_column, args.encoding)
    if args.adapt:
        from .data import load_unlabelled

        target = load_unlabelled(args.target, tuple(str(c) for c in adapter.classes_), adapter.modality_,
                                 text_column=args.text_column, encoding=args.encoding)
        source = None if args.source is None else load_unlabelled(
            args.source, tuple(str(c) for c in adapter.classes_), adapter.modality_, text_column=args.text_column,
            encoding=args.encoding, flag="--source", domain="the training data")
        adapter.adapt(target, args.adapt, source=source)
        if not args.json:
            print(adapter.result_.notes[-1], file=sys.stderr)
    proba = adapter.predict_proba(inputs)
    rows = [{"input": _shown_input(x), **_scored(adapter.classes_, p)} for x, p in zip(inputs, proba)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['label']}\t{r['probability']:.3f}\t{_short(r['input'])}")


def _shown_input(x: Any) -> str:
    return x if isinstance(x, str) else "<array>"


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _scored(classes: Any, p: Any) -> dict[str, Any]:
    """One input's label, its probability and every class's, as `predict` prints them."""
    best = int(p.argmax())
    return {"label": str(classes[best]), "probability": round(float(p[best]), 4),
            "probabilities": {str(c): round(float(q), 4) for c, q in zip(classes, p)}}


def _predict_bank(folders: list[str], items: list[str], args: argparse.Namespace) -> None:
    """Every input labelled by every model of one body (``--adapters``)."""
    from .bank import AdapterBank

    bank = AdapterBank.load(folders)
    if not items:
        raise HeadstartError("Nothing to predict: give texts, a CSV/JSONL file, image files or a folder of images.")
    first = bank[bank.names[0]]
    inputs = expand_inputs(items, first.modality_, args.text_column, args.encoding)
    proba = bank.predict_proba(inputs)
    rows = [{"input": _shown_input(x),
             "models": {name: _scored(bank[name].classes_, p[i]) for name, p in proba.items()}}
            for i, x in enumerate(inputs)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        labels = "\t".join(f"{m}={v['label']} ({v['probability']:.3f})" for m, v in r["models"].items())
        print(f"{labels}\t{_short(r['input'])}")


def _cmd_export(args: argparse.Namespace) -> None:
    from .adapter import Adapter

    out = check_out(args.out)
    adapter = Adapter.load(args.model)
    if args.format == "merged":
        adapter.merge_adapters().save(out)
        result = {"format": "merged", "out": str(out), "note": "adapters (LoRA, IA3) folded into the weights; load "
                  "with Adapter.load (or `headstart predict`) as any saved model"}
    else:
        examples = expand_inputs(args.examples, adapter.modality_, None, "utf-8") if args.examples else None
        manifest = adapter.export_onnx(out, examples=examples, atol=args.atol)
        result = {"format": "onnx", "out": str(out), "check": manifest["check"],
                  "lora_layers_merged": manifest["lora_layers_merged"]}
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.format == "merged":
        print(f"merged model saved in {out}")
    else:
        check = result["check"]
        print(f"ONNX model in {out}: ONNX Runtime reproduces the PyTorch probabilities on {check['examples']} "
              f"examples (max difference {check['max_abs_diff']:.1e}); predict with "
              f"headstart.deploy.OnnxClassifier({str(out)!r})")


def add_predict_commands(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict with a saved model (or several on one body: --adapters)",
                       usage="headstart predict MODEL INPUT [INPUT ...] | --adapters A/,B/ INPUT [INPUT ...]")
    p.add_argument("items", nargs="*", metavar="MODEL INPUT",
                   help="a folder written by `headstart fit`, then texts, a CSV/TSV/JSONL file, image files or a "
                        "folder (with --adapters: the inputs only)")
    p.add_argument("--adapters", metavar="A/,B/",
                   help="several model folders of one backbone, loaded onto one body: each input gets every "
                        "model's label")
    p.add_argument("--adapt", choices=("tent", "bn-adapt"),
                   help="adapt the model to the deployment domain before predicting (test-time adaptation, no label "
                        "needed): tent (normalisation layers made confident on the --target examples) or bn-adapt "
                        "(BatchNorm statistics recomputed on them: conv nets)")
    p.add_argument("--target", help="with --adapt: unlabelled examples of the deployment domain (a file like the "
                   "training data, labels never read, or a folder of images)")
    p.add_argument("--source", help="with --adapt, for a conv net fine-tuned with its BatchNorm frozen (the default): "
                   "examples of the training data (labels never read), onto whose statistics the target's are mapped")
    p.add_argument("--text-column", help="column with the texts in a CSV/JSONL input (default: guessed)")
    p.add_argument("--encoding", default="utf-8", help="encoding of a CSV/TSV/JSONL input")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("export", help="export a saved model for deployment: ONNX (checked) or adapters merged")
    p.add_argument("model", help="a folder written by `headstart fit`")
    p.add_argument("--out", required=True, help="folder to write the export to")
    p.add_argument("--format", choices=("onnx", "merged"), default="onnx",
                   help="onnx (default: model.onnx + deploy.json, for headstart.deploy) or merged (LoRA, IA3 folded "
                        "into the weights, a saved headstart model)")
    p.add_argument("--examples", nargs="*", help="inputs (texts, files, a folder) to check the ONNX model on "
                                                 "(default: built-in ones)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed probability difference (default 1e-4)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_export)
