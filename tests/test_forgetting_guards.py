"""The guards against forgetting (``ewc``, ``lwf``) and the output they keep (``train/reference.py``), tiny models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from headstart import Adapter
from headstart.strategies import create_strategy, prepare_model
from headstart.terms import create_term
from headstart.train import AdaptedModel, TrainConfig, build_param_groups
from headstart.train.context import FitContext
from headstart.train.loop import BatchSource
from headstart.train.objective import Batch
from headstart.train.reference import SIMILARITY_SCALE, reference_for

from .conftest import tiny_backbone


def _context(model: AdaptedModel, task, previous=()):
    b = model.backbone
    source = BatchSource(task.inputs, task.labels, b.preprocess)
    return FitContext(model, TrainConfig(seed=0, batch_size=4), torch.device("cpu"), 0, source, None, "full",
                      task.classes, previous=list(previous))


def _model(backbone: str = "minilm-l6", spec: str = "full") -> AdaptedModel:
    torch.manual_seed(0)
    model = AdaptedModel(tiny_backbone(backbone), 2)
    strategy = create_strategy(spec)
    prepare_model(model, strategy)
    build_param_groups(model, strategy.stages()[-1].plan(model.n_blocks), 1e-3, 1e-3, 0.0)
    return model


def test_the_output_kept_is_the_previous_head_then_the_pretraining_classifier_then_the_similarities():
    model = _model()
    old = nn.Linear(model.backbone.feature_dim, 3)
    assert reference_for(model, [old], torch.device("cpu")).kind == "previous"
    text = reference_for(model, None, torch.device("cpu"))
    assert text.kind == "similarity" and not text.usable(1) and text.usable(2)
    feats = torch.randn(4, model.backbone.feature_dim)
    logits = text.logits(feats)
    unit = nn.functional.normalize(feats, dim=-1)
    assert torch.allclose(logits[0, 1], SIMILARITY_SCALE * unit[0] @ unit[1]) and (logits.diagonal() < -1e3).all()
    image = _model("mobilenetv2")
    head = nn.Linear(image.backbone.feature_dim, 10)
    object.__setattr__(image.backbone, "_source_head", head)  # a tiny stand-in for the ImageNet classifier
    source = reference_for(image, None, torch.device("cpu"))
    assert source.kind == "source" and "pretraining classifier (10 classes)" in source.what
    x = torch.randn(3, image.backbone.feature_dim)
    assert torch.allclose(source.logits(x), head(x)) and not source.heads[0].weight.requires_grad


@pytest.mark.parametrize("previous", [False, True])
def test_ewc_is_zero_where_it_starts_and_weights_each_move_by_its_normalised_fisher(text_task, previous):
    model = _model()
    heads = [nn.Linear(model.backbone.feature_dim, 2)] if previous else []
    ctx = _context(model, text_task, heads)
    term = create_term("ewc")
    term.prepare(ctx)
    assert term.reference.kind == ("previous" if previous else "similarity")
    fisher = torch.cat([f.flatten() for f in term.fisher])
    assert fisher.mean().item() == pytest.approx(1.0, rel=1e-4) and (fisher >= 0).all() and fisher.max() > 1
    assert len(term.fisher) == sum(1 for p in model.backbone.parameters() if p.requires_grad)
    batch = Batch([0, 1], {}, torch.tensor([0, 1]))
    assert term.value(model, batch, ctx).item() == 0.0
    with torch.no_grad():
        p, _, f = term.pairs[0]
        p.add_(0.1)
    assert term.value(model, batch, ctx).item() == pytest.approx(0.5 * float((f * 0.01).sum()), rel=1e-4)


def test_ewc_estimates_its_fisher_on_the_rehearsal_buffer_when_there_is_one(text_task):
    model = _model()
    ctx = _context(model, text_task, [nn.Linear(model.backbone.feature_dim, 2)])
    b = model.backbone
    replay = text_task.subset([0, 1, 2, 3])
    ctx.sources["replay"] = BatchSource(replay.inputs, replay.labels, b.preprocess)
    on_replay, on_train = create_term("ewc"), create_term("ewc")
    on_replay.prepare(ctx)
    del ctx.sources["replay"]
    on_train.prepare(ctx)
    assert not all(torch.equal(a, c) for a, c in zip(on_replay.fisher, on_train.fisher))


def test_lwf_is_zero_for_the_starting_model_and_grows_as_the_outputs_move(text_task):
    model = _model()
    ctx = _context(model, text_task)
    term = create_term("lwf")
    term.prepare(ctx)
    assert term.teacher.shape == (len(text_task), model.backbone.feature_dim)
    model.eval()  # the teacher was recorded without dropout
    index = [0, 3, 5, 6]
    state = model.backbone.preprocess([text_task.inputs[i] for i in index])
    assert abs(term.value(model, Batch(index, state, torch.tensor([0, 1, 0, 1])), ctx).item()) < 1e-5
    with torch.no_grad():
        for p in model.backbone.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    assert term.value(model, Batch(index, state, torch.tensor([0, 1, 0, 1])), ctx).item() > 1e-4
    assert term.value(model, Batch([0], {k: v[:1] for k, v in state.items()}, torch.tensor([0])), ctx).item() == 0


@pytest.mark.parametrize("guard", ["ewc", "lwf", "l2sp"])
def test_a_strong_guard_keeps_the_similarity_structure_closer_than_no_guard(text_task, guard):
    """Trained hard on a toy task, a fine-tune moves the body's features; the guard at a large weight keeps more
    of what the body computed (its features of held texts stay closer to the starting ones)."""
    held = ["the plot was fun", "a dull actor", "love it", "so bad", "very great film", "awful"]
    start = tiny_backbone("minilm-l6").embed(held)

    def drift(**options):
        clf = Adapter(lambda p: tiny_backbone("minilm-l6", p), "full", feature_cache=None, epochs=6, lr=3e-3,
                      seed=0, **options).fit(text_task, val=text_task)
        after = clf.model_.backbone.embed(held)
        return 1 - nn.functional.cosine_similarity(after, start).mean().item()

    weight = {"ewc": 10.0, "lwf": 10.0, "l2sp": 10.0}[guard]
    free, guarded = drift(), drift(guard=guard, guard_weight=weight)
    assert free > 1e-3 and guarded < 0.7 * free, (free, guarded)


def test_headstart_options_lists_every_guard_with_its_default(capsys):
    from headstart.cli import main

    assert main(["options", "full"]) == 0
    out = capsys.readouterr().out
    assert "'ewc', 'l2sp', 'lwf'" in out
    for name, weight in (("ewc", "1"), ("lwf", "1"), ("l2sp", "1")):
        rows = [line.split()[:4] for line in out.splitlines()]
        assert [name, "guard", "weight", weight] in rows, name


def test_guard_settings_that_make_no_sense_are_one_sentence_each():
    from headstart.errors import HeadstartError

    with pytest.raises(HeadstartError, match=r"^Strategy 'probe' has no option 'guard'"):
        create_strategy("probe", guard="ewc")
    with pytest.raises(HeadstartError, match=r"^The 'guard_weight' parameter of full must be positive or None. "
                                             r"Got -1"):
        create_strategy("full", guard="ewc", guard_weight=-1.0)
    with pytest.raises(HeadstartError, match=r"^The 'samples' parameter of ewc must be a positive integer"):
        create_term("ewc", samples=0)


def test_lwf_defaults_to_its_measured_weight_on_a_similarity_structure_and_to_the_papers_on_a_head(text_task):
    from headstart.terms.lwf import SIMILARITY_WEIGHT

    model = _model()
    task = text_task
    own = create_term("lwf")
    own.prepare(_context(model, task))
    assert own.reference.kind == "similarity" and own.resolved_weight == SIMILARITY_WEIGHT == 0.001
    assert own.describe().startswith("lwf × 0.001 (keeps the similarity structure")
    previous = create_term("lwf")
    previous.prepare(_context(model, task, [nn.Linear(model.backbone.feature_dim, 2)]))
    assert previous.reference.kind == "previous" and previous.resolved_weight == 1.0
    given = create_term("lwf", weight=0.5)
    given.prepare(_context(model, task))
    assert given.resolved_weight == 0.5  # a weight the user gives always wins
