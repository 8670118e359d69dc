"""``report.html``: one self-contained page (plots embedded as data URIs, no network) for a race."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..race.analysis import Recommendation, Row, TransferVerdict, accuracy_text, budget_label

__all__ = ["Page", "render_html"]

CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d2330}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #dde;padding-bottom:.2em}
.sub{color:#667} table{border-collapse:collapse;width:100%;font-size:.9em} th,td{padding:.35em .6em;
border-bottom:1px solid #e5e7ef;text-align:right} th:first-child,td:first-child{text-align:left}
tr.best td{font-weight:600;background:#f1f8f1} .card{border:1px solid #dde;border-radius:8px;padding:1em 1.2em;
margin:1em 0} .good{border-left:5px solid #2e8b57} .warn{border-left:5px solid #d9822b} .bad{border-left:5px solid
#c0392b} img{max-width:100%} code{background:#f4f5f8;padding:.1em .3em;border-radius:4px} pre{white-space:pre-wrap}
.chance{color:#c0392b;font-size:.85em} td.text{text-align:left;max-width:40em} table.small{width:auto}
"""


@dataclass
class Page:
    """Everything the page shows, computed by ``write_report``."""

    title: str
    spec: dict[str, Any]
    data: dict[str, Any]
    rows: list[Row]
    best: dict[Any, str]
    verdict: TransferVerdict
    recommendation: Recommendation | None
    choice: str
    chance: float | None = None
    near_chance: set[tuple[str, Any]] = field(default_factory=set)
    stop_reasons: dict[tuple[str, Any], str] = field(default_factory=dict)
    epoch_warning: str | None = None
    class_report: dict[str, Any] | None = None
    misclassified: list[dict[str, str]] = field(default_factory=list)
    advice: dict[str, Any] | None = None
    advice_check: str | None = None
    plots: dict[str, Path | None] = field(default_factory=dict)
    curves: dict[str, Path | None] = field(default_factory=dict)
    noise_rule: str = ""
    configs: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    command: str = ""
    hidden: int = 0
    forgetting: str | None = None  # which strategy kept the most pretrained competence at equal accuracy
    deployment: list[str] = field(default_factory=list)  # out-of-domain accuracy, the unsupervised choice, the gap
    missing: list[str] = field(default_factory=list)  # cells of the grid without all their seeds (an incomplete race)
    diverging: str | None = None  # runs whose training loss rose
    timing: str | None = None  # the caveat when the seconds are noisy


def _img(path: Path | None, alt: str) -> str:
    if path is None or not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _budget(r: Row) -> str:
    return budget_label(r.budget) if r.budget is not None else f"all ({r.per_class:.0f}/class)"


def _table(p: Page) -> str:
    chooses = "cross-validated accuracy" if p.rows and p.rows[0].cross_validated else "selection accuracy"
    ood = any(r.ood_mean is not None for r in p.rows)
    iwv = any(r.iwv_mean is not None or r.target_entropy is not None for r in p.rows)
    head = (f"<tr><th>strategy</th><th>labels/class</th><th>seeds</th><th>{chooses}</th>"
            "<th>test accuracy</th><th>test macro-F1</th><th>trainable params</th><th>s / run</th><th>s / epoch</th>"
            "<th>epochs</th><th>ms / prediction</th><th>stopped</th><th>Δθ (L2)</th><th>Δθ / ‖θ₀‖</th>"
            "<th>kept</th><th>drift</th>" + ("<th>OOD accuracy</th><th>OOD − test</th>" if ood else "")
            + ("<th>IWV</th><th>target entropy</th>" if iwv else "") + "</tr>")
    body = []
    for r in p.rows:
        cls = ' class="best"' if p.best.get(r.budget) == r.strategy else ""
        per_epoch = f"{r.seconds_per_epoch:.2f}" if r.seconds_per_epoch else "–"
        at_chance = " <span class='chance'>≈ chance</span>" if (r.strategy, r.budget) in p.near_chance else ""
        latency = f"{r.predict_ms:.2f}" if r.predict_ms is not None else "–"
        body.append(
            f"<tr{cls}><td>{html.escape(r.strategy)}</td><td>{_budget(r)}</td><td>{r.seeds}</td>"
            f"<td>{r.sel_acc_mean:.3f}</td><td>{accuracy_text(r.acc_mean, r.acc_std)}{at_chance}</td>"
            f"<td>{accuracy_text(r.f1_mean, r.f1_std)}</td>"
            f"<td>{r.trainable_params:,}</td><td>{r.seconds:.1f}</td><td>{per_epoch}</td><td>{r.epochs:.1f}</td>"
            f"<td>{latency}</td><td>{html.escape(p.stop_reasons.get((r.strategy, r.budget), ''))}</td>"
            f"<td>{r.delta_l2:.3f}</td><td>{r.delta_relative:.4f}</td>"
            f"<td>{'–' if r.kept_mean is None else f'{r.kept_mean:.1%} ± {r.kept_std or 0:.1%}'}</td>"
            f"<td>{'–' if r.drift_mean is None else f'{r.drift_mean:.3f}'}</td>"
            + (f"<td>{_or_dash(r.ood_mean, r.ood_std)}</td><td>{_signed(r.ood_mean, r.acc_mean)}</td>" if ood else "")
            + (f"<td>{_or_dash(r.iwv_mean)}</td><td>{_or_dash(r.target_entropy)}</td>" if iwv else "") + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _or_dash(mean: float | None, std: float | None = None) -> str:
    return "–" if mean is None else accuracy_text(mean, std)


def _signed(a: float | None, b: float) -> str:
    return "–" if a is None or b != b else f"{a - b:+.3f}"


def _kept_words(p: Page) -> str:
    """What the kept and drift columns measure, from the rows that measured them."""
    what = next((r.kept_what for r in p.rows if r.kept_what), None)
    if what is None and not any(r.drift_mean is not None for r in p.rows):
        return ""
    kept = f"Kept: how much pretrained competence a run kept, {what}. " if what else ""
    return (kept + "Drift: 1 − the mean cosine between the run's and the pretrained body's features of held "
            "examples. Both are measured only where a pretrained body moved (–: nothing moved, or from scratch), "
            "and never choose. ")


def _card(kind: str, title: str, body: str) -> str:
    return f"<div class='card {kind}'><h2 style='margin-top:0;border:0'>{title}</h2>{body}</div>"


def _details(p: Page) -> str:
    rec, report = p.recommendation, p.class_report
    if rec is None or report is None:
        return ""
    classes = [c["class"] for c in report["per_class"]]
    head = "<tr><th>true \\ predicted</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in classes) + "</tr>"
    matrix = "".join(f"<tr><td>{html.escape(c)}</td>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
                     for c, row in zip(classes, report["matrix"]))
    per_class = "".join(f"<tr><td>{html.escape(c['class'])}</td><td>{c['precision']:.3f}</td><td>{c['recall']:.3f}"
                        f"</td><td>{c['f1']:.3f}</td><td>{c['support']}</td></tr>" for c in report["per_class"])
    parts = [f"<h2>The recommendation up close: <code>{html.escape(rec.strategy)}</code> at "
             f"{budget_label(rec.budget)} labels per class</h2>",
             f"<p class='sub'>On the test examples, pooled over {report['seeds']} seed(s).</p>",
             f"<table class='small'>{head}{matrix}</table>",
             "<h3>Per class</h3><table class='small'><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
             f"<th>test examples</th></tr>{per_class}</table>"]
    if p.misclassified:
        def shown(m: dict[str, str]) -> str:
            if m["preview"].startswith("data:image/"):
                return f"<img alt='misclassified example' src='{m['preview']}'>"
            return html.escape(m["preview"])

        rows = "".join(f"<tr><td class='text'>{shown(m)}</td><td>{html.escape(m['true'])}</td>"
                       f"<td>{html.escape(m['predicted'])}</td></tr>" for m in p.misclassified)
        parts.append("<h3>Some test examples it got wrong (first seed)</h3><table><tr><th>example</th><th>true</th>"
                     f"<th>predicted</th></tr>{rows}</table>")
    return "".join(parts)


def render_html(p: Page) -> str:
    data = p.data
    test_from = (f"the test file {html.escape(data['test_source'])}" if data.get("test_source")
                 else "held out of the data")
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(p.title)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{html.escape(p.title)}</h1><p class='sub'>generated {dt.datetime.now():%Y-%m-%d %H:%M} by "
             f"headstart · {data['examples']:,} examples, {len(data['classes'])} classes · "
             f"selection: {data['selection']:,} held-out examples · test: {data['test']:,} examples, "
             f"{test_from} · the same for every run</p>",
             f"<p class='card'><b>{html.escape(p.choice)}</b></p>"]
    if p.hidden:
        parts.append(f"<p class='sub'>Not shown: {p.hidden} run(s) in this folder's store that belong to other "
                     "settings (another grid, options or an older default); `headstart report` or `headstart "
                     "compare` with those settings shows them.</p>")
    parts += [f"<p class='sub'>note: {html.escape(n)}</p>" for n in data.get("notes", [])]
    if p.missing:
        shown = "; ".join(p.missing[:12]) + (f"; and {len(p.missing) - 12} more" if len(p.missing) > 12 else "")
        parts.append(_card("warn", "This race is incomplete",
                           f"<p>{len(p.missing)} cell(s) of its grid have not finished: {html.escape(shown)}. The "
                           "recommendation is made at the largest budget every entry has finished, and the table "
                           "shows only what ran; `headstart compare` with the same settings resumes the rest.</p>"))
    if p.epoch_warning:
        parts.append(_card("warn", "Runs that hit the epoch cap", f"<p>{html.escape(p.epoch_warning)}</p>"))
    if p.diverging:
        parts.append(_card("bad", "Diverging runs", f"<p>{html.escape(p.diverging)}</p>"))
    if p.recommendation is not None:
        reasons = "".join(f"<li>{html.escape(x)}</li>" for x in p.recommendation.reasons)
        parts.append(_card("good", f"Recommendation: <code>{html.escape(p.recommendation.strategy)}</code>",
                           f"<ul>{reasons}</ul>"))
    kind = {True: "good", False: "bad", None: "warn"}[p.verdict.pretraining_helps]
    lines = p.verdict.message.split("\n")
    parts.append(_card(kind, "Negative-transfer check", f"<p><b>{html.escape(lines[0])}</b></p><ul>"
                       + "".join(f"<li>{html.escape(x)}</li>" for x in lines[1:]) + "</ul>"))
    if p.forgetting:
        parts.append(_card("warn", "Forgetting", f"<p>{html.escape(p.forgetting)}</p>"))
    if p.deployment:
        parts.append(_card("warn", "The deployment domain", "<ul>" + "".join(f"<li>{html.escape(x)}</li>"
                                                                              for x in p.deployment) + "</ul>"))
    if p.advice is not None:
        reasons = "".join(f"<li>{html.escape(x)}</li>" for x in p.advice["reasons"])
        parts.append(_card("warn", f"Advice before the race: <code>{html.escape(p.advice['strategy'])}</code>",
                           f"<ul>{reasons}</ul><p><b>{html.escape(p.advice_check or '')}</b></p>"))
    chance = (f" The dotted line is chance: always predicting the most frequent test class scores {p.chance:.3f}."
              if p.chance is not None else "")
    parts.append(f"<h2>Learning curves</h2><p class='sub'>{chance.strip()}</p>"
                 + _img(p.plots.get("learning_curve"), "learning curves"))
    parts.append("<h2>Results</h2><p class='sub'>mean ± standard deviation over seeds; bold: best at that budget on "
                 "selection accuracy (test accuracy is only reported). Labels/class counts every label a run saw, "
                 "validation included. s / run is the wall-clock of one fit, ms / prediction the time to predict one "
                 "test example; Δθ is how far the backbone's weights moved from where they started. "
                 f"{html.escape(_kept_words(p))}"
                 f"<span class='chance'>≈ chance</span>: not clearly above the majority-class rate. "
                 f"{html.escape(p.noise_rule)}</p>" + (f"<p class='sub'><b>{html.escape(p.timing)}</b></p>"
                                                       if p.timing else "") + _table(p))
    parts.append("<h2>Cost against accuracy</h2>" + _img(p.plots.get("cost_accuracy"), "cost against accuracy"))
    parts.append(_details(p))
    parts.append("<h2>Training curves</h2><p class='sub'>every run of each strategy: colour is the budget, line "
                 "style the seed; ★ marks the epoch whose weights the run kept (its result): early stopping's best "
                 "epoch, or, for a run that trained its planned epochs (monitor=none), the last.</p>")
    for strategy, path in p.curves.items():
        parts.append(_img(path, f"training curves of {strategy}") if path is not None else
                     f"<p><code>{html.escape(strategy)}</code>: fitted without epochs (closed form), no curve.</p>")
    versions = ", ".join(f"{k} {v}" for k, v in p.versions.items())
    parts.append("<h2>How this was run</h2><p>Reproduce (resumes: finished runs are reused):</p>"
                 f"<pre>{html.escape(p.command)}</pre><p class='sub'>{html.escape(versions)}</p>"
                 "<h3>Fully resolved configuration of each strategy (first run; learning rates as used)</h3>"
                 f"<pre>{html.escape(json.dumps(p.configs, indent=2))}</pre>"
                 f"<h3>The race</h3><pre>{html.escape(json.dumps(p.spec, indent=2))}</pre></body></html>")
    return "\n".join(parts)
