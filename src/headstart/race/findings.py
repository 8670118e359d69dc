"""What a race says beyond its choice, reported and never choosing: which strategy forgot least at equal accuracy,
and what the deployment domain's numbers show (out-of-domain accuracy, LP-FT against plain fine-tuning, the pick
importance-weighted validation makes without the deployment labels).
"""

from __future__ import annotations

from .analysis import Row, _budget_order, _selection_noise, budget_label

__all__ = ["deployment_lines", "least_forgetting"]


def least_forgetting(rows: list[Row]) -> str | None:
    """One sentence: at the largest budget, among the strategies within selection noise of the best one, which kept
    the most pretrained competence (None when fewer than two of them measured it). Nothing here chooses."""
    if not rows:
        return None
    top = max({r.budget for r in rows}, key=_budget_order)
    at = [r for r in rows if r.budget == top]
    best = max(at, key=lambda r: r.sel_acc_mean)
    noise = _selection_noise(best)
    level = [r for r in at if best.sel_acc_mean - r.sel_acc_mean <= noise and r.kept_mean is not None]
    if len(level) < 2:
        return None
    level.sort(key=lambda r: -r.kept_mean)
    first, others = level[0], level[1:]
    rest = ", ".join(f"{r.strategy} {r.kept_mean:.0%}" for r in others)
    return (f"Forgetting at equal accuracy: of the strategies level on selection at {budget_label(top)}/class "
            f"(within ±{noise:.3f} of the best), {first.strategy} kept the most pretrained competence, "
            f"{first.kept_mean:.0%} {first.kept_what} ({rest}).")


def deployment_lines(rows: list[Row]) -> list[str]:
    """What the race says of the deployment domain: which entry keeps the most accuracy on its labelled test set
    (LP-FT against plain fine-tuning where both ran), and which one importance-weighted validation picks without its
    labels, with how often that matched the deployment test set's best. Nothing here chooses the recommendation."""
    if not rows:
        return []
    lines = []
    budgets = sorted({r.budget for r in rows}, key=_budget_order)
    top = [r for r in rows if r.budget == budgets[-1]]
    ood = [r for r in top if r.ood_mean is not None]
    if ood:
        best = max(ood, key=lambda r: r.ood_mean)
        lines.append(f"Out of domain at {budget_label(budgets[-1])}/class: {best.strategy} keeps the most accuracy on "
                     f"the deployment test set, {best.ood_mean:.3f} ({best.acc_mean:.3f} in domain, a gap of "
                     f"{best.ood_mean - best.acc_mean:+.3f}); reported only, never used to choose.")
        by = {r.strategy: r for r in ood}
        if "full" in by and "full[head_init=random]" in by:
            lp, plain = by["full"], by["full[head_init=random]"]
            lines.append(f"LP-FT (full, from the probe's head) {lp.ood_mean:.3f} against plain fine-tuning "
                         f"(full[head_init=random]) {plain.ood_mean:.3f} out of domain; in domain "
                         f"{lp.acc_mean:.3f} against {plain.acc_mean:.3f}.")
    picks = []
    for b in budgets:
        at = [r for r in rows if r.budget == b and r.iwv_mean is not None]
        if at:
            pick = max(at, key=lambda r: r.iwv_mean)
            oracle = max((r for r in at if r.ood_mean is not None), key=lambda r: r.ood_mean, default=None)
            picks.append((b, pick, oracle))
    if picks:
        b, pick, oracle = picks[-1]
        line = (f"Without the deployment domain's labels, importance-weighted validation (selection accuracy weighted "
                f"towards the --target examples) picks {pick.strategy} at {budget_label(b)}/class "
                f"({pick.iwv_mean:.3f})")
        judged = [(p, o) for _, p, o in picks if o is not None]
        if judged:
            agree = sum(p.strategy == o.strategy for p, o in judged)
            line += (f"; the deployment test set's best there is {oracle.strategy} ({oracle.ood_mean:.3f}); the two "
                     f"agreed at {agree} of {len(judged)} budget(s)")
        lines.append(line + ".")
    return lines
