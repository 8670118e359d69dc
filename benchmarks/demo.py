"""The main job's wall-clock: ``headstart demo`` from scratch (empty results folder, warm artefact cache).

    python benchmarks/demo.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402


def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="headstart-demo-"))
    tic = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "headstart.cli", "demo", "--out", str(out), "--quiet", "--json"],
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - tic
    result = json.loads(done.stdout)
    table = result["table"]
    strategies = list(dict.fromkeys(r["strategy"] for r in table))
    budgets = list(dict.fromkeys(r["budget"] for r in table))
    cell = {(r["strategy"], r["budget"]): r for r in table}
    best = {b: max((r for r in table if r["budget"] == b), key=lambda r: r["sel_acc_mean"])["strategy"]
            for b in budgets}
    lines = ["| strategy | " + " | ".join(f"{b}/class" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for s in strategies:
        cells = []
        for b in budgets:
            r = cell[(s, b)]
            text = f"{r['acc_mean']:.3f} ± {r['acc_std']:.3f}"
            cells.append(f"**{text}**" if best[b] == s else text)
        lines.append(f"| `{s}` | " + " | ".join(cells) + " |")
    runs = len(table) * table[0]["seeds"]
    body = (f"`headstart demo` (the README's first command after set-up): {len(strategies)} strategies × "
            f"{len(budgets)} budgets × {table[0]['seeds']} seeds = {runs} runs on rotten-tomatoes with `minilm-l6`, "
            f"advice, report.\n\n**Wall-clock: {seconds / 60:.1f} min** ({seconds:.0f} s). Recommendation: "
            f"`{result['recommendation']['strategy']}`; pretraining helps: {result['pretraining_helps']}.\n\n"
            f"Test accuracy, mean ± std over seeds; bold: chosen at that budget on selection accuracy. "
            f"{result['chosen_on']}\n\n" + "\n".join(lines))
    write_section("demo", "The main job: `headstart demo`", body)
    shutil.rmtree(out, ignore_errors=True)
    print(body)


if __name__ == "__main__":
    main()
