"""``report.html``: one self-contained page (plots embedded as data URIs, no network) for a race."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

from ..race.analysis import Recommendation, Row, TransferVerdict, budget_label

__all__ = ["render_html"]

CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d2330}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #dde;padding-bottom:.2em}
.sub{color:#667} table{border-collapse:collapse;width:100%;font-size:.9em} th,td{padding:.35em .6em;
border-bottom:1px solid #e5e7ef;text-align:right} th:first-child,td:first-child{text-align:left}
tr.best td{font-weight:600;background:#f1f8f1} .card{border:1px solid #dde;border-radius:8px;padding:1em 1.2em;
margin:1em 0} .good{border-left:5px solid #2e8b57} .warn{border-left:5px solid #d9822b} .bad{border-left:5px solid
#c0392b} img{max-width:100%} code{background:#f4f5f8;padding:.1em .3em;border-radius:4px} pre{white-space:pre-wrap}
"""


def _img(path: Path | None, alt: str) -> str:
    if path is None or not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(rows: list[Row], best: dict[Any, str]) -> str:
    head = ("<tr><th>strategy</th><th>labels/class</th><th>seeds</th><th>selection accuracy</th>"
            "<th>test accuracy</th><th>test macro-F1</th>"
            "<th>trainable params</th><th>s / run</th><th>s / epoch</th><th>epochs</th><th>Δθ (L2)</th>"
            "<th>Δθ / ‖θ₀‖</th></tr>")
    body = []
    for r in rows:
        cls = ' class="best"' if best.get(r.budget) == r.strategy else ""
        per_epoch = f"{r.seconds_per_epoch:.2f}" if r.seconds_per_epoch else "–"
        body.append(
            f"<tr{cls}><td>{html.escape(r.strategy)}</td><td>{budget_label(r.budget)}"
            f"{'' if r.budget is not None else f' (~{r.per_class:.0f})'}</td><td>{r.seeds}</td>"
            f"<td>{r.sel_acc_mean:.3f}</td><td>{r.acc_mean:.3f} ± {r.acc_std:.3f}</td>"
            f"<td>{r.f1_mean:.3f} ± {r.f1_std:.3f}</td>"
            f"<td>{r.trainable_params:,}</td><td>{r.seconds:.1f}</td><td>{per_epoch}</td><td>{r.epochs:.1f}</td>"
            f"<td>{r.delta_l2:.3f}</td><td>{r.delta_relative:.4f}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def render_html(*, title: str, meta: dict[str, Any], rows: list[Row], best: dict[Any, str], verdict: TransferVerdict,
                recommendation: Recommendation | None, advice: dict[str, Any] | None, advice_check: str | None,
                learning_curve: Path | None, curves: dict[str, Path | None], choice: str, hidden: int = 0) -> str:
    data = meta["data"]
    test_from = (f"the test file {html.escape(data['test_source'])}" if data.get("test_source")
                 else "held out of the data")
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p class='sub'>generated {dt.datetime.now():%Y-%m-%d %H:%M} by "
             f"headstart · {data['examples']:,} examples, {len(data['classes'])} classes · "
             f"selection: {data['selection']:,} held-out examples · test: {data['test']:,} examples, "
             f"{test_from} · the same for every run</p>",
             f"<p class='card'><b>{html.escape(choice)}</b></p>"]
    if hidden:
        parts.append(f"<p class='sub'>Not shown: {hidden} run(s) in this folder's store that belong to other settings "
                     "(another grid, options or an older default); `headstart compare` with those settings shows them."
                     "</p>")
    parts += [f"<p class='sub'>note: {html.escape(n)}</p>" for n in data.get("notes", [])]
    if recommendation is not None:
        reasons = "".join(f"<li>{html.escape(x)}</li>" for x in recommendation.reasons)
        parts.append(f"<div class='card good'><h2 style='margin-top:0;border:0'>Recommendation: "
                     f"<code>{html.escape(recommendation.strategy)}</code></h2><ul>{reasons}</ul></div>")
    kind = {True: "good", False: "bad", None: "warn"}[verdict.pretraining_helps]
    lines = verdict.message.split("\n")
    parts.append(f"<div class='card {kind}'><h2 style='margin-top:0;border:0'>Negative-transfer check</h2>"
                 f"<p><b>{html.escape(lines[0])}</b></p><ul>"
                 + "".join(f"<li>{html.escape(x)}</li>" for x in lines[1:]) + "</ul></div>")
    if advice is not None:
        reasons = "".join(f"<li>{html.escape(x)}</li>" for x in advice["reasons"])
        parts.append(f"<div class='card warn'><h2 style='margin-top:0;border:0'>Advice before the race: "
                     f"<code>{html.escape(advice['strategy'])}</code></h2><ul>{reasons}</ul>"
                     f"<p><b>{html.escape(advice_check or '')}</b></p></div>")
    parts.append("<h2>Learning curves</h2>" + _img(learning_curve, "learning curves"))
    parts.append("<h2>Results</h2><p class='sub'>mean ± standard deviation over seeds; bold: best at that "
                 "budget on selection accuracy (test accuracy is only reported). Labels/class counts every label a "
                 "run saw, validation included. s / run is the wall-clock of one fit; Δθ is how far the backbone's "
                 "weights moved from where they started.</p>" + _table(rows, best))
    parts.append("<h2>Training curves</h2><p class='sub'>every run of each strategy; ★ marks the epoch whose "
                 "weights early stopping restored.</p>")
    for strategy, path in curves.items():
        parts.append(_img(path, f"training curves of {strategy}") if path is not None else
                     f"<p><code>{html.escape(strategy)}</code>: fitted without epochs (closed form), no curve.</p>")
    spec = json.dumps(meta["spec"], indent=2)
    parts.append(f"<h2>How this was run</h2><pre>{html.escape(spec)}</pre></body></html>")
    return "\n".join(parts)
