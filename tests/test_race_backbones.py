"""Several backbones raced side by side (``compare --backbones``): one store, one report, entries per candidate."""

from __future__ import annotations

import json

import pytest

from headstart.backbones import BackboneSpec, list_backbones, register_backbone
from headstart.backbones.text import build_tiny_text
from headstart.cli import main
from headstart.errors import HeadstartError
from headstart.race import RaceSpec, run_race
from headstart.race.runner import grid_records
from headstart.race.store import ResultStore
from headstart.report import write_report

from .race_child import toy_task

A, B = "tiny-text-a", "tiny-text-b"


def _register() -> None:
    """Two registered tiny text encoders (what a user's own ``register_backbone`` entries look like)."""
    for name, normalize in ((A, True), (B, False)):
        if name not in list_backbones():
            def build(pretrained: bool = True, *, _name=name, _normalize=normalize):
                return build_tiny_text(pretrained, _name, _normalize)

            register_backbone(BackboneSpec(name, "text", "tests", "0.1M", build, build, lambda: "installed"))


_register()


def _spec(**kw) -> RaceSpec:
    return RaceSpec("toy", A, **{"strategies": ["probe", "lora"], "budgets": [8], "seeds": 2,
                                 "train_options": {"epochs": 2, "precision": "fp32"}, "backbones": [A, B], **kw})


def test_every_strategy_runs_on_every_candidate_under_its_own_entry():
    spec = _spec()
    assert spec.entries() == [f"probe on {A}", f"probe on {B}", f"lora on {A}", f"lora on {B}"]
    runs = spec.runs()
    assert len(runs) == 2 * 2 * 2 and {r.backbone for r in runs} == {A, B}
    keys = {spec.run_key(r, "data") for r in runs}
    assert len(keys) == len(runs)  # the candidate is part of every run's identity


def test_a_run_on_one_candidate_is_the_same_run_as_in_a_race_of_that_backbone_alone():
    """The key names the backbone, not the race around it: a single-backbone race's results are reused."""
    both, alone = _spec(), RaceSpec("toy", B, strategies=["probe", "lora"], budgets=[8], seeds=2,
                                    train_options={"epochs": 2, "precision": "fp32"})
    on_b = {(r.strategy, r.seed): both.run_key(r, "data") for r in both.runs() if r.backbone == B}
    assert on_b == {(r.strategy, r.seed): alone.run_key(r, "data") for r in alone.runs()}


def test_a_candidates_own_options_go_over_the_races_common_ones():
    spec = RaceSpec("digits", "mobilenetv2", strategies=["probe"], budgets=[8],
                    backbones=["mobilenetv2[image_size=64]", "efficientnet-lite0"], backbone_options={"image_size": 96})
    assert spec.backbone_of("mobilenetv2[image_size=64]") == ("mobilenetv2", {"image_size": 64})
    assert spec.backbone_of("efficientnet-lite0") == ("efficientnet-lite0", {"image_size": 96})


@pytest.mark.parametrize("backbones, says", [
    ([A], "needs two or more"),
    ([A, A], "listed twice"),
    ([A, "mobilenetv2"], "must read the same data"),
    ([A, "nope"], "Unknown backbone 'nope'"),
    ([A, f"{B}[image_size=64]"], "does not apply to"),
])
def test_bad_candidate_lists_get_one_sentence(backbones, says):
    with pytest.raises(HeadstartError, match=says):
        _spec(backbones=backbones)


def test_two_backbones_race_into_one_store_and_one_report(tmp_path):
    out = tmp_path / "race"
    records = run_race(_spec(strategies=["scratch-small", "probe"]), out, task=toy_task(), progress=False)
    assert {(r["strategy"], r["backbone"]) for r in records} == {
        (f"{s} on {b}", b) for s in ("scratch-small", "probe") for b in (A, B)}
    assert {r["strategy_entry"] for r in records} == {"scratch-small", "probe"}
    page = write_report(out).read_text(encoding="utf-8")
    assert f"toy × {A} vs {B}" in page and f"probe on {B}" in page
    summary = json.loads((out / "results.json").read_text())
    assert {row["strategy"] for row in summary["table"]} == {f"{s} on {b}" for s in ("scratch-small", "probe")
                                                             for b in (A, B)}
    assert summary["recommendation"]["strategy"] in {f"probe on {A}", f"probe on {B}"}
    assert f"--backbones {A},{B}" in summary["reproduce"] and "--backbone " not in summary["reproduce"]
    assert (out / "plots" / f"training_scratch-small_on_{B}.png").is_file()  # one curve plot per entry that has epochs
    with ResultStore(out / "results.sqlite") as store:
        assert len(grid_records(store)[0]) == len(records) == 8


def test_compare_races_the_candidates_and_advises_on_the_first(toy_csv, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["compare", str(toy_csv), "--backbones", f"{A},{B}", "--strategies", "scratch-small,probe",
                 "--budgets", "8", "--seeds", "1", "--quiet", "--set", "epochs=2", "--out", str(out)]) in (0, None)
    printed = capsys.readouterr().out
    assert f"probe on {A}" in printed and f"scratch-small on {B}" in printed and "recommendation: " in printed
    assert "The race agrees" in printed or "The race disagrees" in printed  # the advice, on the first candidate
    with ResultStore(out / "results.sqlite") as store:
        advice = store.get_meta("advice")
    assert advice["backbone"] == A and advice["entry"] == f"{advice['strategy']} on {A}"


def test_compare_refuses_backbone_and_backbones_together(tmp_path, no_work, capsys):
    assert main(["compare", "toy.csv", "--backbone", A, "--backbones", f"{A},{B}", "--out", str(tmp_path / "r")]) == 2
    assert "Give --backbone (one) or --backbones (several side by side), not both." in capsys.readouterr().err


def test_compare_checks_the_common_options_against_every_candidate(tmp_path, no_work, capsys):
    assert main(["compare", "toy.csv", "--backbones", f"{A},mobilenetv2", "--image-size", "64",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--image-size does not apply to tiny-text-a" in capsys.readouterr().err


def test_the_lab_says_it_shows_one_backbone_when_opened_on_a_race_of_several(tmp_path):
    from headstart.lab.session import LabSession

    out = tmp_path / "race"
    run_race(_spec(strategies=["probe"], seeds=1), out, task=toy_task(), progress=False)
    with pytest.raises(HeadstartError, match=f"races {A} and {B} side by side, and the lab shows one backbone"):
        LabSession.open(str(out))


@pytest.mark.integration
def test_the_packaged_vision_backbones_race_side_by_side_on_digits(tmp_path, capsys):
    out = tmp_path / "digits"
    assert main(["compare", "digits", "--backbones", "mobilenetv2,efficientnet-lite0[image_size=96]",
                 "--image-size", "64", "--strategies", "probe", "--budgets", "8", "--seeds", "1", "--test-limit",
                 "300", "--no-advice", "--quiet", "--json", "--out", str(out)]) in (0, None)
    summary = json.loads(capsys.readouterr().out)
    rows = {row["strategy"]: row for row in summary["table"]}
    assert set(rows) == {"probe on mobilenetv2", "probe on efficientnet-lite0[image_size=96]"}
    assert all(row["acc_mean"] > 0.5 for row in rows.values())  # ten digit classes: chance is 0.1
    with ResultStore(out / "results.sqlite") as store:
        assert {r["backbone"] for r in store.records()} == {"mobilenetv2", "efficientnet-lite0[image_size=96]"}
