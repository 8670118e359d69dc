"""The race report: plots and a self-contained HTML page, written from a results folder."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import HeadstartError
from ..paths import given_path
from ..race.analysis import (
    best_per_budget,
    choice_line,
    missing_cells,
    negative_transfer,
    recommend,
    summarize,
)
from ..race.findings import deployment_lines, least_forgetting
from ..race.grid import expected_cells, race_entries
from ..race.runner import grid_records
from ..race.store import ResultStore
from .details import (
    chance,
    class_report,
    diverging_runs,
    epoch_cap_warning,
    gap_line,
    loss_terms,
    misclassified,
    near_chance,
    noise_rule,
    reproduce_command,
    stop_reasons,
    timing_caveat,
    versions,
)
from .html import Page, render_html
from .plots import cost_accuracy, learning_curve, training_curves

__all__ = ["advice_check", "gap_line", "write_report"]


def advice_check(advice: dict[str, Any] | None, recommended: str | None) -> str | None:
    if advice is None or recommended is None:
        return None
    advised = advice.get("entry", advice["strategy"])  # in a race over several backbones: on the first one
    if advised == recommended:
        return f"The race agrees: the advised {advised} is also the recommendation."
    return (f"The race disagrees: it recommends {recommended}, not the advised {advised} "
            "(the advice is a starting point; the race is the measurement).")


def write_report(out: str | Path) -> Path:
    """Read ``out/results.sqlite``; write ``out/plots/*.png``, ``results.json``, ``results.csv``, ``runs.csv``
    and ``report.html``. Safe while a race still writes to the store (it only reads).

    Only the runs of the store's current grid are shown; runs of other settings are counted as not shown.
    """
    out = given_path(out, "The race folder")
    if out.is_file():
        raise HeadstartError(f"{out} is a file; give the folder that `headstart compare --out` wrote.")
    if not out.exists():
        raise HeadstartError(f"{out} does not exist; give the folder that `headstart compare --out` wrote.")
    if not (out / "results.sqlite").is_file():
        raise HeadstartError(f"{out} holds no race (no results.sqlite); run `headstart compare ... --out {out}` first.")
    with ResultStore(out / "results.sqlite") as store:
        spec, data = store.get_meta("spec"), store.get_meta("data")
        advice = store.get_meta("advice")
        gap = store.get_meta("deployment_gap")
        records, hidden = grid_records(store)
    if not records:
        raise HeadstartError(f"{out} has no finished run of its grid yet; wait for the first one, then run again.")
    entries = race_entries(spec)
    rows = summarize(records, entries)
    verdict = negative_transfer(records)
    expected = expected_cells(spec)
    rec = recommend(rows, verdict, expected)
    chance_acc = chance(data)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    title = f"headstart race: {data['name']} × {' vs '.join(spec.get('backbones') or [spec['backbone']])}"
    page = Page(
        title=title, spec=spec, data=data, rows=rows, best=best_per_budget(rows), verdict=verdict,
        recommendation=rec,
        choice=choice_line(data["selection"], data["test"], data.get("test_source"), data.get("cv_folds")),
        chance=chance_acc, near_chance={(r.strategy, r.budget) for r in rows if near_chance(r, chance_acc)},
        stop_reasons={(r.strategy, r.budget): "; ".join(filter(None, (stop_reasons(records, r.strategy, r.budget),
                                                                     loss_terms(records, r.strategy, r.budget))))
                      for r in rows},
        epoch_warning=epoch_cap_warning(records), diverging=diverging_runs(records), timing=timing_caveat(records),
        class_report=class_report(records, data, rec.strategy, rec.budget) if rec else None,
        misclassified=misclassified(records, data, rec.strategy, rec.budget) if rec else [],
        advice=advice, advice_check=advice_check(advice, rec.strategy if rec else None),
        plots={"learning_curve": learning_curve(rows, plots / "learning_curve.png", title, chance_acc),
               "cost_accuracy": cost_accuracy(rows, plots / "cost_accuracy.png")},
        curves={s: training_curves(records, s, plots / f"training_{re.sub(r'[^A-Za-z0-9._-]+', '_', s)}.png")
                for s in entries},
        noise_rule=noise_rule(rows),
        configs={s: next(({"config": r.get("config"), "stages": r.get("stages"), "device": r.get("device"),
                           "threads": r.get("threads")} for r in records if r["strategy"] == s), None)
                 for s in entries},
        versions=versions(), command=reproduce_command(spec, str(out)), hidden=hidden,
        forgetting=least_forgetting(rows), missing=missing_cells(rows, expected),
        deployment=[*deployment_lines(rows), *([gap_line(gap)] if gap else [])])
    (out / "report.html").write_text(render_html(page), encoding="utf-8")
    summary = {"chosen_on": page.choice, "table": [r.to_dict() for r in rows], "chance": chance_acc,
               "negative_transfer": verdict.message, "pretraining_helps": verdict.pretraining_helps,
               "verdict": [asdict(c) for c in verdict.comparisons],
               "recommendation": None if rec is None else rec.to_dict(),
               "advice": advice, "advice_check": page.advice_check, "runs_not_shown": hidden,
               "forgetting": page.forgetting, "deployment": page.deployment, "deployment_gap": gap,
               "missing_cells": page.missing,
               "reproduce": page.command}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _write_csv(out / "results.csv", [r.to_dict() for r in rows])
    _write_csv(out / "runs.csv", [{**{k: v for k, v in r.items() if k in RUN_COLUMNS},
                                   "kept": (r.get("forgetting") or {}).get("kept"),
                                   "drift": (r.get("forgetting") or {}).get("drift")} for r in records])
    return out / "report.html"


RUN_COLUMNS = ("strategy", "budget", "seed", "from_scratch", "n_train", "n_val", "n_selection", "n_test", "sel_acc",
               "test_acc", "test_macro_f1", "trainable_params", "seconds", "predict_ms_per_example", "epochs",
               "best_epoch", "stop_reason", "delta_l2", "key")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
