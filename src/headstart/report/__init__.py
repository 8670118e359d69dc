"""The race report: plots and a self-contained HTML page, written from a results folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..race.analysis import best_per_budget, choice_line, negative_transfer, recommend, summarize
from ..race.runner import grid_records
from ..race.store import ResultStore
from .html import render_html
from .plots import learning_curve, training_curves

__all__ = ["advice_check", "write_report"]


def advice_check(advice: dict[str, Any] | None, recommended: str | None) -> str | None:
    if advice is None or recommended is None:
        return None
    if advice["strategy"] == recommended:
        return f"The race agrees: the advised {advice['strategy']} is also the recommendation."
    return (f"The race disagrees: it recommends {recommended}, not the advised {advice['strategy']} "
            "(the advice is a starting point; the race is the measurement).")


def write_report(out: str | Path) -> Path:
    """Read ``out/results.sqlite``; write ``out/plots/*.png``, ``out/results.json`` and ``out/report.html``.

    Only the runs of the store's current grid are shown; runs of other settings are counted as not shown.
    """
    out = Path(out)
    with ResultStore(out / "results.sqlite") as store:
        spec, data = store.get_meta("spec"), store.get_meta("data")
        advice = store.get_meta("advice")
        records, hidden = grid_records(store)
    rows = summarize(records, spec["strategies"])
    verdict = negative_transfer(records)
    rec = recommend(rows, verdict)
    chose = choice_line(data["selection"], data["test"], data.get("test_source"))
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    title = f"headstart race: {data['name']} × {spec['backbone']}"
    curve = learning_curve(rows, plots / "learning_curve.png", title)
    curves = {s: training_curves(records, s, plots / f"training_{s.replace(':', '_')}.png") for s in spec["strategies"]}
    check = advice_check(advice, rec.strategy if rec else None)
    page = render_html(title=title, meta={"spec": spec, "data": data}, rows=rows, best=best_per_budget(rows),
                       verdict=verdict, recommendation=rec, advice=advice, advice_check=check, learning_curve=curve,
                       curves=curves, choice=chose, hidden=hidden)
    (out / "report.html").write_text(page, encoding="utf-8")
    summary = {"chosen_on": chose, "table": [r.to_dict() for r in rows], "negative_transfer": verdict.message,
               "pretraining_helps": verdict.pretraining_helps,
               "recommendation": None if rec is None else rec.to_dict(),
               "advice": advice, "advice_check": check, "runs_not_shown": hidden}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return out / "report.html"
