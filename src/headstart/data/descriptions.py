"""``--class-descriptions FILE``: what each class is, in words, for ``zero-shot`` when class names say too little.

One line per class: the class name (as the labels spell it), a colon, then one or more descriptions separated
by ``|``; each description is a prompt of its own (``{}`` in it is replaced by the class name)::

    fresh: a positive movie review | a film the critic loved
    rotten: a negative movie review | a film the critic disliked

Blank lines and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import HeadstartError

__all__ = ["read_class_descriptions"]


def read_class_descriptions(path: str | Path) -> dict[str, tuple[str, ...]]:
    """The file's descriptions per class name; one sentence naming the line for anything else."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise HeadstartError(f"--class-descriptions {path} does not exist; give a text file with one line per "
                             "class, e.g. 'positive: a glowing review | a film the critic loved'.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HeadstartError(f"--class-descriptions {path} cannot be read as UTF-8 text ({exc}).") from None
    out: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, rest = line.partition(":")
        texts = tuple(t.strip() for t in rest.split("|") if t.strip())
        if not colon or not name.strip() or not texts:
            raise HeadstartError(f"{path}, line {number}: {line[:60]!r} is not 'class: description | another "
                                 "description'; give each class on its own line.")
        if name.strip() in out:
            raise HeadstartError(f"{path}, line {number}: class {name.strip()!r} is described twice; give each "
                                 "class one line (several descriptions on it, separated by |).")
        out[name.strip()] = texts
    if not out:
        raise HeadstartError(f"--class-descriptions {path} describes no class; give one line per class.")
    return out
