"""`headstart lab` speed, as a person sees it in Chromium: first paint, an epoch's end to its point on the
chart, a slider move to a trained setting, and "Train all three" at 8/class at the lab's default setting: the
time from the click to each curve's first point and to the end, on rotten-tomatoes (minilm-l6) and mnist-5k
(mobilenetv2).

    python benchmarks/lab.py [--repeats 1] [--data rotten-tomatoes,mnist-5k]

Each repeat starts a fresh lab folder (nothing trained yet; the feature cache is shared, as a user's is),
serves it with `headstart lab` on 127.0.0.1, and drives Debian's Chromium with Playwright. Timings
inside the page come from the page itself (`window.labMetrics`: the server stamps each epoch event with
its clock; the page records when it drew it and when each curve got its first point). The machine's load
(the 1-minute load average before and after) is kept with each row: on a shared machine the seconds are
read beside it. Rows append to ``benchmarks/results/lab.jsonl``; the section is rebuilt from every row there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, machine, write_section  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "lab.jsonl"
CHROMIUM = "/usr/bin/chromium"


def _serve(folder: Path, data: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(folder / "lab.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    proc = subprocess.Popen([sys.executable, "-m", "headstart.cli", "lab", data, "--port", str(port),
                             "--out", str(folder / "runs")], stdout=subprocess.PIPE, stderr=log, text=True)
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the lab did not start: {(folder / 'lab.log').read_text()[-2000:]}")
        if re.search(r"http://127\.0\.0\.1:\d+/", line):
            break
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}/"


def _slider(page, selector: str, value: int) -> float:
    """Move a slider; milliseconds until the page has drawn the setting (from the store) again."""
    return page.evaluate("""([sel, v]) => new Promise((done) => {
        const before = window.labMetrics.redraws.length, t0 = performance.now();
        const el = document.querySelector(sel);
        el.value = String(v); el.dispatchEvent(new Event('input'));
        const poll = () => window.labMetrics.redraws.length > before
            ? done(window.labMetrics.redraws[window.labMetrics.redraws.length - 1] - t0) : requestAnimationFrame(poll);
        poll();
    })""", [selector, value])


def measure(data: str) -> dict:
    import os

    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _serve(Path(tmp), data)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                tic = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("body[data-ready='1']", timeout=120_000)
                ready_ms = 1000 * (time.perf_counter() - tic)
                fcp = page.evaluate("() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime")
                budget = page.evaluate("() => document.querySelector('#budget-value').textContent")
                frozen = int(page.evaluate("() => document.querySelector('#frozen').value"))
                n_blocks = int(page.evaluate("() => document.querySelector('#frozen').max"))
                finetune = page.evaluate("() => document.querySelector('#arch-name').textContent").split("· ")[-1]
                tic = time.perf_counter()
                clicked = page.evaluate("() => Date.now() / 1000")
                page.click("#train-all")
                page.wait_for_function("() => { const c = [...document.querySelectorAll('.counter .state')];"
                                       " return c.length === 3 && c.every((s) => s.textContent === 'done'); }",
                                       timeout=1_800_000)
                train_s = time.perf_counter() - tic
                per_run = page.evaluate("() => [...document.querySelectorAll('.counter')].map((c) => ["
                                        "c.querySelector('.name').textContent, "
                                        "c.querySelector('.clock').textContent, c.dataset.key])")
                metrics = page.evaluate("() => JSON.parse(JSON.stringify(window.labMetrics))")
                first_points = [[name, metrics["firstPoint"].get(key, float("nan")) - clicked]
                                for name, _, key in per_run]
                per_run = [[name, clock] for name, clock, _ in per_run]
                latency = page.evaluate("() => window.labMetrics.epochLatency")
                moves = []
                for _ in range(10):  # away to an untrained fine-tune (its scratch and probe are stored) and back
                    _slider(page, "#frozen", 0 if frozen else n_blocks)
                    moves.append(_slider(page, "#frozen", frozen))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    return {"date": dt.date.today().isoformat(), "machine": machine(), "data": data, "setting": "lab defaults",
            "load": [round(load_before, 2), round(os.getloadavg()[0], 2)], "first_point_s": first_points,
            "budget": int(budget),
            "finetune": finetune.strip(), "first_paint_ms": fcp, "ready_ms": ready_ms, "train_all_three_s": train_s,
            "runs": per_run, "epochs_drawn": len(latency),
            "epoch_latency_ms_median": 1000 * statistics.median(latency) if latency else None,
            "epoch_latency_ms_max": 1000 * max(latency) if latency else None,
            "slider_redraw_ms_median": statistics.median(moves), "slider_redraw_ms_max": max(moves)}


def section(rows: list[dict]) -> str:
    lines = ["| date | data | load (1 min, before / after) | first paint | page ready | epoch end → drawn "
             "(median / max) | slider → redrawn (median / max) | click → each curve's first point | Train all three "
             "| runs (own compute) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        runs = ", ".join(f"{name} {clock}" for name, clock in r["runs"])
        stale = "setting" not in r  # measured before the race took turns and the lab had its own defaults
        firsts = ", ".join(f"{name.split(': ')[-1]} {s:.1f} s" for name, s in r.get("first_point_s", [])) or "–"
        load = " / ".join(f"{v:.2f}" for v in r["load"]) if "load" in r else "not kept"
        note = (" (stale: the queue, before the lab's own defaults)" if stale else
                f" ({r['setting']})" if r["setting"] != "lab defaults" else "")
        lines.append(f"| {r['date']}{note} | "
                     f"{r.get('data', 'rotten-tomatoes')} | {load} | {r['first_paint_ms']:.0f} ms | "
                     f"{r['ready_ms']:.0f} ms | {r['epoch_latency_ms_median']:.0f} / "
                     f"{r['epoch_latency_ms_max']:.0f} ms "
                     f"({r['epochs_drawn']} epochs) | {r['slider_redraw_ms_median']:.0f} / "
                     f"{r['slider_redraw_ms_max']:.0f} ms | {firsts} | {r['train_all_three_s']:.0f} s at "
                     f"{r['budget']}/class ({r['finetune']}) | {runs} |")
    return ("`headstart lab DATA` at its own defaults (fine-tunes plan 30 optimiser steps, texts read to 64 tokens, "
            "from scratch: scratch-small, scored on 500 selection and 500 test examples) in Debian's Chromium "
            "driven by Playwright, a fresh lab folder per row. *First paint*: the browser's first-contentful-paint; "
            "*page ready*: navigation to the controls, strip and chart drawn. *Epoch end → drawn*: the server's "
            "clock at the end of each epoch to the page drawing it (server-sent events). *Slider → redrawn*: moving "
            "the frozen-blocks slider back to a trained setting until its stored runs are drawn. *Click → first "
            "point*: from pressing Train all three to each curve's first point (the probe's: its solution). *Train "
            "all three*: the click to the third run stored; the three train side by side, one epoch each in turn, "
            "and each run's clock is its own compute. Targets: first paint under 1 s, an epoch drawn within 1 s, a "
            "slider redraw under 200 ms, every curve's first point within about 5 s of the click, Train all three "
            "in about a minute (on an idle machine: read the load beside the seconds).\n\n" + "\n".join(lines)
            + "\n\nRows: `benchmarks/results/lab.jsonl`.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data", default="rotten-tomatoes,mnist-5k")
    parser.add_argument("--table", action="store_true", help="only rebuild BENCHMARKS.md's section from the rows")
    args = parser.parse_args()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for _, data in [] if args.table else [(r, d) for r in range(args.repeats) for d in args.data.split(",")]:
        row = measure(data)
        print(json.dumps(row), flush=True)
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    write_section("lab", "The lab in the browser: first paint, live epochs, slider redraws, Train all three",
                  section(rows))


if __name__ == "__main__":
    main()
