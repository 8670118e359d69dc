"""Write one benchmark's section into BENCHMARKS.md (replacing that section only), with machine and date."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FILE = ROOT / "BENCHMARKS.md"
HEADER = """# Benchmarks

Measured side by side in one run on the machine named in each section (shared and noisy: read the
ratios, not the absolute seconds). Regenerate with `make bench` (or one script in `benchmarks/`).
"""


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} CPU cores ({cpu}), {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}; {_dt.date.today().isoformat()}")


def write_section(key: str, title: str, body: str) -> None:
    text = FILE.read_text(encoding="utf-8") if FILE.exists() else HEADER
    block = f"<!-- {key}:start -->\n## {title}\n\n_{machine()}_\n\n{body.strip()}\n<!-- {key}:end -->\n"
    pattern = re.compile(rf"<!-- {re.escape(key)}:start -->.*?<!-- {re.escape(key)}:end -->\n", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    FILE.write_text(text, encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a compact results file (none when it does not exist yet)."""
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def merge_jsonl(path: Path, rows: list[dict], order: Callable[[dict], Any]) -> None:
    """Merge ``rows`` into the results file at ``path`` by their ``key``: rows already there are kept, never
    dropped. A lock keeps two benchmark processes (say this version and an older one measuring "before"
    columns) from racing; the file is replaced in one step, so a reader never sees half of it."""
    import json

    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        merged = {r["key"]: r for r in read_jsonl(path)} | {r["key"]: r for r in rows}
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in sorted(merged.values(), key=order)))
        tmp.replace(path)
