"""One race whose runs become rows of a benchmark's results file as each ends (``forgetting.py``, ``domain_shift.py``).

The race is the peers benchmark's (MiniLM-L6 at 64 tokens, 1,000 selection and test examples; MobileNetV2 at
64 px for images); only the runs without a committed row train, so a fresh clone resumes where the file ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _report import merge_jsonl, read_jsonl

IMAGES = ("mnist-5k", "digits", "fashion-mnist")


def race_rows(results: Path, key: Callable[[str, int], str], data: str, entries: list[str], budget: int, seeds: int,
              keep: Sequence[str], folder: str, **spec: Any) -> None:
    """The entries' runs at ``budget`` for ``seeds`` seeds, each missing one trained and written as a row
    ``{"key": key(entry, seed), "kind": "race", "data": data, ...keep}``; ``spec``: more of the race (``target``)."""
    from peers import MAX_LENGTH, TEST_LIMIT, _Remaining

    from headstart.data import load_task
    from headstart.fetch import cache_dir
    from headstart.race import RaceSpec, prepare_race, run_race

    image = data in IMAGES
    race = RaceSpec(data, "mobilenetv2" if image else "minilm-l6", strategies=entries, budgets=[budget], seeds=seeds,
                    test_limit=TEST_LIMIT, backbone_options={"image_size": 64} if image else {"max_length": MAX_LENGTH},
                    **spec)
    done = {r["key"] for r in read_jsonl(results)}
    todo = tuple(r for r in race.runs() if key(r.strategy, r.seed) not in done)
    if not todo:
        return
    task = load_task(data)
    prepared = prepare_race(race, task)

    def write(record: dict[str, Any], *_: Any) -> None:
        row = {"key": key(record["strategy"], record["seed"]), "kind": "race", "data": data,
               **{k: record.get(k) for k in keep}}
        merge_jsonl(results, [row], order=lambda r: r["key"])
        print(row["key"], f"test {record['test_acc']:.3f}", flush=True)

    run_race(_Remaining(**{**asdict(race), "only": todo}), cache_dir() / folder / data, task=task, data=prepared,
             progress=False, on_run_end=write, record_grid=False)
