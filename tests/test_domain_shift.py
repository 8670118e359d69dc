"""The deployment domain: adaptation strategies (dann, iw, bn-adapt, tent), scores on a labelled deployment test set
(``--ood-test``), the deployment gap, and choosing without the deployment domain's labels."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from headstart import Adapter
from headstart.cli import main
from headstart.data import Task
from headstart.errors import HeadstartError
from headstart.race import RaceSpec, run_race, summarize
from headstart.race.domains import importance_weighted_accuracy, mmd, prediction_entropy, proxy_a_distance
from headstart.race.findings import deployment_lines
from headstart.report import gap_line
from headstart.terms.dann import reversal_coefficient, reverse_gradient
from headstart.terms.importance import CLIP, density_ratio, describe_weights

from .conftest import tiny_backbone
from .race_child import toy_task
from .test_race_backbones import A
from .test_training import _image_task


def test_gradient_reversal_is_the_identity_forward_and_flips_the_gradient_by_its_schedule():
    x = torch.randn(3, 4, requires_grad=True)
    y = reverse_gradient(x, 0.7)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, -0.7))
    assert reversal_coefficient(0.0) == 0.0 and 0.99 < reversal_coefficient(1.0) <= 1.0
    assert reversal_coefficient(0.1) < reversal_coefficient(0.5)


def test_density_ratios_favour_the_source_examples_that_look_like_the_target():
    rng = np.random.default_rng(0)
    source = rng.normal(0, 1, (400, 2))
    target = rng.normal(1.5, 1, (400, 2))
    w = density_ratio(source, target)
    assert w.mean() == pytest.approx(1.0) and w.min() >= CLIP[0] / w.max() * 0 and w.max() <= CLIP[1] * 10
    near, far = source[:, 0] > 1, source[:, 0] < -1
    assert w[near].mean() > 3 * w[far].mean()


def test_importance_weights_say_how_many_examples_they_count_as_and_when_they_change_nothing():
    rng = np.random.default_rng(0)
    source = rng.normal(0, 1, (400, 2))
    spread = describe_weights(density_ratio(source, rng.normal(1.5, 1, (400, 2))))
    assert spread.startswith("importance weights from") and "of the 400 labelled examples" in spread
    ess = int(spread.split("counts as ")[1].split()[0])
    assert 10 < ess < 400  # weighted towards a part of the source: fewer examples count
    # domains a classifier separates completely: every ratio at the lower clip, flat after scaling
    far = density_ratio(source, rng.normal(50, 1, (400, 2)))
    assert np.ptp(far) < 1e-9 and "trained as its source-only recipe" in describe_weights(far)


def test_what_a_term_found_when_it_prepared_joins_the_run_notes(text_task):
    from headstart import Adapter

    clf = Adapter(lambda p: tiny_backbone("minilm-l6", p), "iw", epochs=1, feature_cache=False)
    clf.fit(text_task, target=["the plot was fun", "awful acting", "love it", "so bad"] * 3)
    assert [n for n in clf.result_.notes if n.startswith("iw: importance weights from")]


def test_the_iw_term_turns_the_data_term_into_the_importance_weighted_loss(text_task):
    from headstart.strategies import create_strategy, prepare_model
    from headstart.terms import create_term
    from headstart.train import AdaptedModel, TrainConfig, build_param_groups
    from headstart.train.context import FitContext
    from headstart.train.loop import BatchSource
    from headstart.train.objective import Batch, Objective

    torch.manual_seed(0)
    model = AdaptedModel(tiny_backbone("minilm-l6"), 2)
    prepare_model(model, create_strategy("full"))
    build_param_groups(model, create_strategy("full").plan(model.n_blocks), 1e-3, 1e-3, 0.0)
    b = model.backbone
    src = BatchSource(text_task.inputs, text_task.labels, b.preprocess)
    target = BatchSource(["the plot was fun", "awful acting", "love it", "so bad"] * 3, np.zeros(12, dtype=np.int64),
                         b.preprocess)
    ctx = FitContext(model, TrainConfig(seed=0), torch.device("cpu"), 0, src, None, "iw", text_task.classes,
                     {"target": target})
    term = create_term("iw")
    assert "labelled examples" in term.prepare(ctx)  # one sentence on the weights, for the run's notes
    assert term.weights.mean().item() == pytest.approx(1.0, rel=1e-5)
    model.eval()
    index = [0, 1, 2, 3]
    state, labels = src.batch(index)
    batch = Batch(index, state, labels)
    data = Objective().loss(model, batch, 0)
    weighted = (term.weights[index] * torch.nn.functional.cross_entropy(model(state), labels, reduction="none")).mean()
    assert (data + term.value(model, batch, ctx)).item() == pytest.approx(weighted.item(), rel=1e-5)


def test_tent_makes_the_predictions_on_the_target_more_confident_and_bn_adapt_needs_batchnorm(text_task):
    clf = Adapter(lambda p: tiny_backbone("minilm-l6", p), "full", feature_cache=None, epochs=2, lr=1e-3)
    clf.fit(text_task, val=text_task)
    target = ["the plot was not fun", "a great actor", "awful film and dull plot", "love this very good movie"] * 4
    before = prediction_entropy(clf.predict_proba(target))
    clf.adapt(target, "tent")
    assert prediction_entropy(clf.predict_proba(target)) < before
    assert clf.result_.notes[-1].startswith("tent: ") and "prediction entropy" in clf.result_.notes[-1]
    with pytest.raises(HeadstartError, match=r"^This model was adapted at test time \(tent\)"):
        clf.save("nowhere")
    with pytest.raises(HeadstartError, match=r"^bn-adapt recomputes BatchNorm statistics, and minilm-l6 has no "
                                             r"BatchNorm"):
        clf.adapt(target, "bn-adapt")
    with pytest.raises(HeadstartError, match=r"^Unknown test-time adaptation 'tint'; use one of bn-adapt, tent"):
        clf.adapt(target, "tint")


def test_bn_adapt_on_a_body_trained_with_frozen_batchnorm_needs_the_training_data_and_is_repeatable():
    task = _image_task(40)
    vision = lambda p: tiny_backbone("mobilenetv2", p)  # noqa: E731
    clf = Adapter(vision, "probe", feature_cache=None).fit(task)
    rng = np.random.default_rng(1)
    target = [np.clip(rng.normal(200, 20, (24, 24, 3)), 0, 255).astype(np.uint8) for _ in range(20)]
    with pytest.raises(HeadstartError, match=r"^bn-adapt maps the target's BatchNorm statistics onto those the model "
                                             r"was trained around, .* pass examples of the training data as source="):
        clf.adapt(target, "bn-adapt")
    first = next(m for m in clf.model_.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = first.running_mean.clone()
    clf.adapt(target, "bn-adapt", source=task)
    assert not torch.allclose(first.running_mean, before)
    assert clf.result_.notes[-1].endswith("onto those of 80 training examples")
    again = Adapter(vision, "probe", feature_cache=None).fit(task).adapt(target, "bn-adapt", source=task.inputs)
    assert torch.allclose(next(m for m in again.model_.backbone.modules()
                                if isinstance(m, torch.nn.BatchNorm2d)).running_mean, first.running_mean)


def _first_batchnorm_output(model, images):
    from headstart.train.loop import BatchSource

    first = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    handle = first.register_forward_hook(lambda _m, _a, out: seen.append(out.transpose(0, 1).reshape(out.shape[1], -1)))
    state, _ = BatchSource(images, np.zeros(len(images), dtype=np.int64), model.backbone.preprocess).batch(
        range(len(images)))
    model.eval()
    with torch.no_grad():
        logits = model(state, 0)
    handle.remove()
    return seen[0], logits


def test_bn_adapt_maps_the_targets_statistics_onto_those_the_training_data_had_under_frozen_batchnorm():
    """A pretrained body fine-tuned with frozen BatchNorm saw its training data normalised by pretraining statistics:
    plain AdaBN (the target's own statistics) hands the layers above inputs they never saw; mapping onto the
    training data's keeps them, and adapting to the training data itself changes nothing."""
    from headstart.strategies.test_time import batchnorm_adapt
    from headstart.train import AdaptedModel
    from headstart.train.loop import BatchSource

    rng = np.random.default_rng(0)
    source = [np.clip(rng.normal(60, 30, (24, 24, 3)), 0, 255).astype(np.uint8) for _ in range(32)]
    shifted = [np.clip(x.astype(float) * 0.5 + 120, 0, 255).astype(np.uint8) for x in source]

    def adapted(target, given):
        torch.manual_seed(0)
        model = AdaptedModel(tiny_backbone("mobilenetv2"), 2)
        raw = lambda xs: BatchSource(xs, np.zeros(len(xs), dtype=np.int64), model.backbone.preprocess)  # noqa: E731
        out_before, logits_before = _first_batchnorm_output(model, source)
        batchnorm_adapt(model, raw(target), torch.device("cpu"), 32, seed=0, source=raw(given) if given else None)
        return out_before, logits_before, *_first_batchnorm_output(model, target)

    out_source, logits, out_self, logits_self = adapted(source, source)
    assert torch.allclose(logits_self, logits, atol=1e-3)  # onto itself: the model as it was
    assert torch.allclose(out_self.mean(1), out_source.mean(1), atol=1e-3)
    _, _, out_mapped, _ = adapted(shifted, source)
    assert torch.allclose(out_mapped.mean(1), out_source.mean(1), atol=1e-3)
    assert torch.allclose(out_mapped.std(1), out_source.std(1), rtol=1e-2, atol=1e-3)
    _, _, out_plain, _ = adapted(shifted, None)  # plain AdaBN: standardised (mean β), not the training data's
    first = next(m for m in tiny_backbone("mobilenetv2").modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.allclose(out_plain.mean(1), first.bias.detach(), atol=1e-3)
    assert not torch.allclose(out_plain.mean(1), out_source.mean(1), atol=1e-2)


def test_bn_adapt_draws_its_examples_across_a_file_sorted_by_class():
    from headstart.strategies.test_time import batchnorm_adapt
    from headstart.train import AdaptedModel
    from headstart.train.loop import BatchSource

    model = AdaptedModel(tiny_backbone("mobilenetv2"), 2)
    first = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    dark, bright = np.full((24, 24, 3), 20, np.uint8), np.full((24, 24, 3), 230, np.uint8)

    def mean_after(images, limit):
        source = BatchSource(images, np.zeros(len(images), dtype=np.int64), model.backbone.preprocess)
        batchnorm_adapt(model, source, torch.device("cpu"), 4, seed=0, limit=limit)
        return first.running_mean.clone()

    sorted_file = [dark] * 16 + [bright] * 16  # the first half all one kind, as a file sorted by class
    only_dark, only_bright = mean_after([dark] * 16, 16), mean_after([bright] * 16, 16)
    half = mean_after(sorted_file, 16)  # half the file: a draw across it, not its first 16 (dark) examples
    assert not torch.allclose(half, only_dark, atol=1e-4)
    between = (half - only_dark) / (only_bright - only_dark)
    moved = (only_bright - only_dark).abs() > 1e-3
    assert ((between[moved] > 0.1) & (between[moved] < 0.9)).float().mean() > 0.9


def test_target_batches_pass_batchnorm_as_the_model_predicts_and_leave_its_statistics():
    from headstart.terms.base import target_features
    from headstart.train import AdaptedModel, TrainConfig
    from headstart.train.context import FitContext
    from headstart.train.loop import BatchSource

    model = AdaptedModel(tiny_backbone("mobilenetv2"), 2).train()
    rng = np.random.default_rng(0)
    images = [rng.integers(150, 255, (24, 24, 3), dtype=np.uint8) for _ in range(8)]
    target = BatchSource(images, np.zeros(8, dtype=np.int64), model.backbone.preprocess)
    ctx = FitContext(model, TrainConfig(seed=0), torch.device("cpu"), 0, target, None, "coral", ("a", "b"),
                     {"target": target})
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    feats = target_features(model, ctx, 8)
    assert feats.requires_grad  # the term's gradient reaches the body
    assert all(torch.equal(m.running_mean, b) for m, b in zip(norms, before)) and all(m.training for m in norms)
    state, _ = target.batch(range(8))
    with torch.no_grad():
        predicted = model.eval().features(state, 0).float()
    order = ctx._cursors["target"].order  # the draw's order, the same eight examples
    assert torch.allclose(feats.detach(), predicted[torch.as_tensor(order)], atol=1e-5)


def test_the_gap_scores_are_zero_for_one_domain_and_large_for_two():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (300, 8)), rng.normal(0, 1, (300, 8))
    far = rng.normal(4, 1, (300, 8))
    assert proxy_a_distance(a, b) < 0.3 and proxy_a_distance(a, far) > 1.8
    assert mmd(a, b) < 0.02 < mmd(a, far)
    line = gap_line({"a_distance": 1.9, "mmd": 0.8, "against": "target", "n_labelled": 300, "n_deployment": 300})
    assert "proxy A-distance 1.90 (almost entirely separable" in line
    assert importance_weighted_accuracy([0, 1, 1], np.array([0, 1, 0]), [1.0, 1.0, 2.0]) == pytest.approx(0.5)


def _shifted(n: int, seed: int) -> Task:
    """The toy task's labels on another kind of text: questions rather than statements."""
    rng = np.random.default_rng(seed)
    pos, neg = ["was it good", "is it great", "did you love it"], ["was it bad", "is it awful", "did you hate it"]
    texts = [f"{rng.choice(pos if i % 2 == 0 else neg)} {i}" for i in range(n)]
    return Task(texts, np.array([i % 2 for i in range(n)]), ("pos", "neg"), "text", "questions")


def _write(path, task: Task, labelled: bool = True):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"] if labelled else ["text"])
        for t, y in zip(task.inputs, task.labels):
            w.writerow([t, task.classes[y]] if labelled else [t])
    return str(path)


def test_a_race_scores_every_run_out_of_domain_and_chooses_without_target_labels(tmp_path, toy_csv, capsys):
    ood = _write(tmp_path / "ood.csv", _shifted(60, 1))
    target = _write(tmp_path / "target.csv", _shifted(60, 2), labelled=False)
    argv = ["compare", str(toy_csv), "--backbone", A, "--strategies", "probe,full,dann,iw,tent", "--budgets", "8",
            "--seeds", "2", "--epochs", "1", "--no-advice", "--quiet", "--ood-test", ood, "--target", target,
            "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("strategy"))
    assert header.split()[-4:] == ["OOD", "acc", "gap", "IWV"]
    assert "Out of domain at 8/class:" in out and "importance-weighted validation" in out
    assert "Deployment gap between the labelled data and the --target examples: proxy A-distance" in out
    summary = json.loads((tmp_path / "r" / "results.json").read_text())
    assert summary["deployment_gap"]["against"] == "target" and 0 <= summary["deployment_gap"]["a_distance"] <= 2
    rows = {r["strategy"]: r for r in summary["table"]}
    assert all(r["ood_mean"] is not None and r["iwv_mean"] is not None for r in rows.values())
    page = (tmp_path / "r" / "report.html").read_text()
    assert "<th>OOD accuracy</th>" in page and "The deployment domain" in page
    assert "--ood-test" in summary["reproduce"] and "--target" in summary["reproduce"]


def test_ood_scores_are_part_of_a_runs_key_and_never_choose(tmp_path):
    task = toy_task()
    ood = tmp_path / "ood.csv"
    _write(ood, _shifted(40, 3))
    spec = dict(strategies=["probe", "full"], budgets=[8], seeds=1, train_options={"epochs": 1})
    plain = run_race(RaceSpec("toy", A, **spec), tmp_path / "a", task=task, progress=False)
    scored = run_race(RaceSpec("toy", A, ood_test=str(ood), **spec), tmp_path / "a", task=task, progress=False)
    assert {r["key"] for r in plain}.isdisjoint({r["key"] for r in scored})
    assert all("ood_acc" not in r for r in plain) and all(0 <= r["ood_acc"] <= 1 for r in scored)
    rows = summarize(scored)
    swapped = [r.__class__(**{**r.__dict__, "ood_mean": 1.0 - (r.ood_mean or 0)}) for r in rows]
    from headstart.race.analysis import TransferVerdict, recommend

    assert recommend(rows, TransferVerdict()).strategy == recommend(swapped, TransferVerdict()).strategy
    assert any(line.startswith("Out of domain at 8/class") for line in deployment_lines(rows))


def test_deployment_inputs_that_cannot_be_used_are_one_sentence_each(tmp_path, toy_csv, capsys):
    from headstart.race import prepare_race

    wrong = _write(tmp_path / "wrong.csv", Task(["a", "b", "c", "d"], np.array([0, 1, 0, 1]), ("x", "y"), "text"))
    with pytest.raises(HeadstartError, match=r"^The --ood-test file .* has labels the training data lack"):
        prepare_race(RaceSpec(str(toy_csv), A, strategies=["probe"], budgets=[8], ood_test=wrong))
    labelled = _write(tmp_path / "labelled.csv", _shifted(20, 4))
    data = prepare_race(RaceSpec(str(toy_csv), A, strategies=["probe", "dann"], budgets=[8], target=labelled))
    assert sum("has a label column: its examples are used unlabelled" in n for n in data.notes) == 1
    assert main(["compare", str(toy_csv), "--backbone", A, "--strategies", "probe,iw", "--budgets", "8",
                 "--out", str(tmp_path / "r")]) == 2
    assert "iw trains on unlabelled examples of the deployment domain; give them with --target FILE" in \
        capsys.readouterr().err
    images = tmp_path / "imgs"
    images.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(images / "a.png")
    with pytest.raises(HeadstartError, match=r"--target .* is a folder, but the labelled data are texts"):
        prepare_race(RaceSpec(str(toy_csv), A, strategies=["probe", "dann"], budgets=[8], target=str(images)))
    with pytest.raises(HeadstartError, match=r"^bn-adapt applies to image backbones only; tiny-text-a is a text"):
        prepare_race(RaceSpec(str(toy_csv), A, strategies=["probe", "bn-adapt"], budgets=[8], target=labelled))


def test_predict_adapts_a_saved_model_to_the_target_before_predicting(tmp_path, toy_csv, capsys):
    assert main(["fit", str(toy_csv), "--backbone", A, "--strategy", "full", "--epochs", "1", "--budget", "8",
                 "--out", str(tmp_path / "m"), "--quiet"]) == 0
    target = _write(tmp_path / "target.csv", _shifted(30, 5), labelled=False)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m"), "was it good", "--adapt", "tent", "--target", target, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["label"] in ("pos", "neg")
    assert main(["predict", str(tmp_path / "m"), "was it good", "--adapt", "tent"]) == 2
    assert "--adapt and --target go together" in capsys.readouterr().err
    # the training data's examples (a text model has no BatchNorm to map, but they load and pass through)
    assert main(["predict", str(tmp_path / "m"), "was it good", "--adapt", "tent", "--target", target,
                 "--source", str(toy_csv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["label"] in ("pos", "neg")
    assert main(["predict", str(tmp_path / "m"), "was it good", "--source", str(toy_csv)]) == 2
    assert "--source goes with --adapt" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "m"), "was it good", "--adapt", "tent", "--target", target,
                 "--source", str(tmp_path / "missing.csv")]) == 2
    assert "--source " in (err := capsys.readouterr().err) and "missing.csv: the file does not exist" in err


def test_a_terms_own_modules_learn_at_a_new_heads_rate_whatever_the_bodys(text_task, monkeypatch):
    """DANN's discriminator is born with the stage: at a fitted body's rate (5e-5 for a conv net's full) it barely
    learned in a run, its domain loss stayed at log 2 and its reversed gradient was noise to the body."""
    import headstart.strategies.runner as runner
    from headstart.strategies.finetune import RANDOM_HEAD_LR

    seen = {}
    monkeypatch.setattr(runner, "run_training", lambda model, groups, *a, **k: seen.update(
        {g["name"]: g["lr"] for g in groups}))
    Adapter(lambda p: tiny_backbone("minilm-l6", p), "dann", feature_cache=None, epochs=1, lr=2e-5).fit(
        text_task, val=text_task, target=["an odd film", "a plot"] * 4)
    assert seen["term.dann.discriminator"] == RANDOM_HEAD_LR
    assert {lr for name, lr in seen.items() if not name.startswith("term.")} == {2e-5}


def test_coral_aligns_the_means_as_well_as_the_covariances():
    from headstart.terms.coral import coral_distance

    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    assert coral_distance(x, x).item() == pytest.approx(0.0, abs=1e-7)
    shifted = coral_distance(x, x + 3.0).item()  # the same covariance, the cloud moved
    assert shifted == pytest.approx(9.0, rel=1e-5)
    assert coral_distance(x, 2 * x).item() > 0  # the same mean, a wider cloud


def test_the_race_says_when_importance_weighted_validation_is_only_the_selection_accuracy():
    from headstart.race.domains import flat_weights_note

    assert flat_weights_note([1.0] * 30).startswith("importance-weighted validation: every selection weight is the "
                                                   "same")
    assert flat_weights_note([0.5, 1.5] * 15) is None
    assert flat_weights_note([]) is None
