"""Paths a user types, checked where they enter: an empty string is never the current folder.

``Path("")`` is ``Path(".")``, so an unset shell variable (``headstart predict model/ "$FILE"``) would
otherwise classify every image under the current folder, or read a race from it. Each entry point
names the argument (``--test``, ``--out``, the model folder), so the sentence says which one is empty.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .errors import HeadstartError

__all__ = ["PATH_ARGUMENTS", "check_path_arguments", "given_path"]

#: attribute of a parsed command line -> how its message names it
PATH_ARGUMENTS = {"data": "DATA", "out": "--out", "test": "--test", "target": "--target", "source": "--source",
                  "model": "MODEL",
                  "class_descriptions": "--class-descriptions", "from_model": "--from",
                  "ood_test": "--ood-test",
                  "folder": "FOLDER", "inputs": "an input", "examples": "an --examples input"}


def given_path(value: str | Path, what: str, wanted: str = "a path") -> Path:
    """``value`` as a path; an empty or blank string is one sentence naming ``what`` (``--test``)."""
    if isinstance(value, str) and not value.strip():
        raise HeadstartError(f"{what} is empty ({value!r}); give {wanted} (an unset shell variable, as in \"$FILE\", "
                             "expands to nothing).")
    return Path(value)


def check_path_arguments(args: argparse.Namespace) -> None:
    """Every path argument a command has, before any work: none of them may be an empty string."""
    for name, what in PATH_ARGUMENTS.items():
        value: Any = getattr(args, name, None)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str):
                given_path(v, what, "a text, a file or a folder" if name in ("inputs", "examples") else "a path")
