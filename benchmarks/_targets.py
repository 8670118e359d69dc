"""The fine-tuning targets, judged from the per-run records with the race's own noise rule.

Each comparison is paired by seed (same draws, same held-out examples). Its noise is what the race's
negative-transfer check uses (``headstart.race.analysis``): the spread of the paired differences over
seeds divided by sqrt(seeds), never less than the binomial standard error of a difference of two
accuracies on the shared examples. "Level" means not more than 2 noise units behind, "ahead" more than 2
noise units ahead. headstart's strategies are compared on *selection* accuracy (what every choice is
made on); a peer has no selection score, so comparisons with peers use test accuracy.
"""

from __future__ import annotations

import numpy as np

from headstart.race.analysis import CLEARLY, _noise

FINE_TUNES = ["full", "lora", "lldr", "partial:2"]
HF = ["hf-trainer", "hf-trainer-10ep"]


def by_seed(records: list[dict], name: str, budget: int, key: str) -> dict[int, float]:
    return {r["seed"]: r[key] for r in records
            if (r.get("strategy") or r.get("peer")) == name and r["budget"] == budget}


def compare(a: dict[int, float], b: dict[int, float], n: int) -> tuple[float, float, int] | None:
    """Mean paired difference a - b, its noise, and the number of seeds both have."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    xs, ys = [a[s] for s in seeds], [b[s] for s in seeds]
    return float(np.mean(xs) - np.mean(ys)), _noise(xs, ys, n), len(seeds)


def state(diff: float, noise: float) -> str:
    """'ahead', 'level' or 'behind' by the race's rule (more than CLEARLY noise units either way)."""
    return "ahead" if diff > CLEARLY * noise else "behind" if diff < -CLEARLY * noise else "level"


def _verdict(diff: float, noise: float, need: str) -> str:
    where = state(diff, noise)
    met = where == "ahead" if need == "ahead" else where != "behind"
    return f"{where}: {'met' if met else '**not met**'}"


def _row(target: str, budget: int, cmp: tuple[float, float, int] | None, need: str, seeds: int,
         on: str) -> str | None:
    if cmp is None:
        return None
    diff, noise, k = cmp
    partial = "" if k == seeds else f" ({k} of {seeds} seeds)"
    return (f"| {target} | {budget} | {on} | {diff:+.3f} | ±{noise:.3f} | {_verdict(diff, noise, need)}{partial} |")


def targets_table(race: list[dict], peers: list[dict], seeds: int, n_selection: int, n_test: int) -> str:
    """One row per target and budget that the records cover; targets with no records yet are left out."""
    budgets = sorted({r["budget"] for r in race})
    lines = ["| target | labels/class | on | difference | noise | verdict |", "|---|---|---|---|---|---|"]
    for b in budgets:
        probe = by_seed(race, "probe", b, "sel_acc")
        for name in FINE_TUNES:
            need = "ahead" if b >= 128 else "level"
            lines.append(_row(f"`{name}` {'ahead of' if need == 'ahead' else 'level with'} `probe`", b,
                              compare(by_seed(race, name, b, "sel_acc"), probe, n_selection), need, seeds,
                              "selection"))
        hf = [(np.mean(list(v.values())), name, v) for name in HF if (v := by_seed(peers, name, b, "test_acc"))]
        if hf:
            _, name, best_hf = max(hf)
            lines.append(_row(f"`full` level with the better HF Trainer run ({name})", b,
                              compare(by_seed(race, "full", b, "test_acc"), best_hf, n_test), "level", seeds, "test"))
        if b >= 128:
            cmp = compare(by_seed(race, "lora", b, "sel_acc"), by_seed(race, "full", b, "sel_acc"), n_selection)
            if cmp is not None:
                diff, noise, k = cmp
                partial = "" if k == seeds else f" ({k} of {seeds} seeds)"
                lines.append(f"| `lora` within one point of `full` | {b} | selection | {diff:+.3f} | – | "
                             f"{'met' if diff >= -0.01 else '**not met**'}{partial} |")
        names = {r["strategy"] for r in race if r["budget"] == b}
        chosen = max(names, key=lambda s: np.mean(list(by_seed(race, s, b, "sel_acc").values())))
        best_peers = [(np.mean(list(v.values())), p, v) for p in {r["peer"] for r in peers if r["budget"] == b}
                      if (v := by_seed(peers, p, b, "test_acc"))]
        if best_peers:
            _, peer, values = max(best_peers)
            lines.append(_row(f"headstart's choice (`{chosen}`) level with the best peer ({peer})", b,
                              compare(by_seed(race, chosen, b, "test_acc"), values, n_test), "level", seeds, "test"))
    return "\n".join(line for line in lines if line)
