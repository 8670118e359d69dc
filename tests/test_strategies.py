"""Every registered strategy on tiny backbones: what trains, that it learns, Δθ, and clear errors."""

from __future__ import annotations

import pytest
import torch

from headstart.errors import HeadstartError
from headstart.strategies import create_strategy, list_strategies, prepare_model
from headstart.train import AdaptedModel, build_param_groups, set_train_mode

from .conftest import REGISTERED, sample_inputs, tiny_backbone

STRATEGIES = list_strategies()
BACKBONES = REGISTERED  # every registry entry (efficientnet, hf: ...) by its tiny build


def _expected_trainable(strategy, model: AdaptedModel) -> set[str]:
    """Names that must train, derived from what the strategy declares (``Strategy.trains``), not from its plan."""
    n = model.n_blocks
    body = {name for name, _ in model.named_parameters() if name.startswith("backbone.")}
    head = {"head.weight", "head.bias"}
    if strategy.trains == "head":
        return head
    if strategy.trains == "top-k":
        return head | {b for b in body if int(b.split(".")[2]) >= n - strategy.k}
    if strategy.trains in ("injected", "named"):
        return head | {b for b in body if strategy.prefix in b}
    assert strategy.trains == "body", strategy.trains
    return head | body


def _model(backbone: str, spec: str):
    strategy = create_strategy(spec)
    torch.manual_seed(0)
    model = AdaptedModel(tiny_backbone(backbone, strategy.pretrained), 3)
    prepare_model(model, strategy)
    return model, strategy


SPECS = [s if s != "partial" else "partial:1" for s in STRATEGIES]
#: every (backbone, strategy) pair the strategy declares it applies to (``Strategy.modalities``), and the others
PAIRS = [(b, s) for b in BACKBONES for s in SPECS if tiny_backbone(b).modality in create_strategy(s).modalities]
REFUSED = [(b, s) for b in BACKBONES for s in SPECS if (b, s) not in PAIRS]


@pytest.mark.parametrize(("backbone", "spec"), REFUSED)
def test_a_strategy_is_refused_in_one_sentence_where_it_does_not_apply(backbone, spec):
    strategy = create_strategy(spec)
    model = AdaptedModel(tiny_backbone(backbone, strategy.pretrained), 3)
    with pytest.raises(HeadstartError, match=rf"^{spec} applies to .* backbones only; {model.backbone.name} is "):
        prepare_model(model, strategy)


@pytest.mark.parametrize(("backbone", "spec"), PAIRS)
def test_exactly_the_intended_tensors_train_and_get_gradients(backbone, spec):
    model, strategy = _model(backbone, spec)
    stage = [s for s in strategy.stages() if not s.test_time][-1]  # the last stage that trains with labels
    build_param_groups(model, stage.plan(model.n_blocks), 1e-3, 1e-3, 0.01)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == _expected_trainable(stage, model)
    set_train_mode(model)
    b = model.backbone
    logits = model(b.preprocess(sample_inputs(b, 4)))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    for name, p in model.named_parameters():
        if name in trainable:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
    assert any(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n in trainable and "lora_B" not in n)


def test_frozen_batchnorm_stays_in_eval_mode():
    model, strategy = _model("mobilenetv2", "partial:1")
    build_param_groups(model, strategy.plan(model.n_blocks), 1e-3, 1e-3, 0.0)
    set_train_mode(model)
    bns = [(i, m) for i, blk in enumerate(model.backbone.blocks) for m in blk.modules()
           if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.training == (i == model.n_blocks - 1) for i, m in bns)
    lora, strategy = _model("mobilenetv2", "lora")
    build_param_groups(lora, strategy.plan(lora.n_blocks), 1e-3, 1e-3, 0.0)
    set_train_mode(lora)
    assert not any(m.training for m in lora.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_lldr_scales_decay_from_the_top():
    model, strategy = _model("minilm-l6", "lldr")
    groups, _ = build_param_groups(model, create_strategy("lldr", decay=0.5).plan(model.n_blocks), 1.0, 1.0, 0.0)
    lrs = {g["name"]: g["lr"] for g in groups}
    top = model.n_blocks - 1
    assert lrs["head"] == 1.0 and lrs[f"block{top}"] == 1.0
    assert lrs[f"block{top - 1}"] == 0.5 and lrs[f"block{top - 2}"] == 0.25


@pytest.mark.parametrize("spec,options,message", [
    ("dance", {}, "Unknown strategy 'dance'. Valid strategies: scratch, scratch-small, zero-shot, prototype, probe, "
                  "partial:K, full, lldr, lora, dora, vera, adapter, ia3, ln-tuning, bitfit, prefix, prompt, "
                  "contrastive:SAMPLING, coral, dann, iw, bn-adapt, tent."),
    ("contrastive", {"iterations": 0}, "The 'iterations' parameter of contrastive must be a positive integer."),
    ("contrastive:triplets", {},
     "The 'sampling' parameter of contrastive must be 'in-batch' or 'pairs'. Got 'triplets'"),
    ("lora", {"rnk": 4}, "Strategy 'lora' has no option 'rnk'. Its options: head_init, guard, guard_weight, adapt, "
                              "adapt_weight, rank, alpha, dropout"),
    ("full", {"head_init": "zeros"}, "The 'head_init' parameter of full must be 'probe' or 'random'. Got 'zeros'"),
    ("partial:x", {}, "In 'partial:x', 'x' is not a valid k."),
    ("full:3", {}, "Strategy 'full' takes no ':' argument; write just 'full'."),
    ("partial:0", {}, "The 'k' parameter of partial must be a positive integer. Got 0 instead"),
    ("lldr", {"decay": 1.5}, "The 'decay' parameter of lldr must be in (0, 1]. Got 1.5 instead"),
    ("lora", {"rank": 0}, "The 'rank' parameter of lora must be a positive integer. Got 0 instead"),
    ("lora", {"dropout": 1.0}, "The 'dropout' parameter of lora must be in [0, 1). Got 1.0 instead"),
    ("full", {"guard": "ewc2"},
     "The 'guard' parameter of full must be one of 'ewc', 'l2sp', 'lwf' or None. Got 'ewc2' instead"),
    ("full", {"guard_weight": 0.1}, "full: guard_weight is set but guard is not; set guard=NAME (ewc, l2sp, lwf)."),
    ("probe", {"solver": "adam"}, "The 'solver' parameter of probe must be 'lbfgs' or 'sgd'. Got 'adam' instead"),
    ("probe", {"selection": "loo"},
     "The 'selection' parameter of probe must be one of 'cv', 'val' or 'train'. Got 'loo' instead"),
])
def test_bad_strategy_specs_say_what_is_valid(spec, options, message):
    with pytest.raises(HeadstartError) as err:
        create_strategy(spec, **options)
    assert str(err.value).startswith(message)


def test_partial_with_more_blocks_than_the_backbone_has():
    model, strategy = _model("minilm-l6", "partial:9")
    with pytest.raises(HeadstartError, match=r"partial:9 asks for more blocks than the backbone has \(3\)"):
        strategy.plan(model.n_blocks)


@pytest.mark.parametrize("backbone,expected", [("minilm-l6", 1e-4), ("mobilenetv2", 1e-3)])
def test_scratch_trains_at_the_architectures_own_rate(backbone, expected):
    from headstart.strategies.runner import fit_model  # noqa: F401  (the runner asks strategies via lr_for)

    assert create_strategy("scratch").lr_for(tiny_backbone(backbone, False)) == expected
    assert create_strategy("full").lr_for(tiny_backbone(backbone)) == 5e-5


def test_a_rate_measured_apart_for_images_applies_to_image_backbones_only_and_is_part_of_a_runs_identity():
    ia3 = create_strategy("ia3")
    assert ia3.lr_for(tiny_backbone("minilm-l6")) == ia3.default_lr == 3e-2
    assert ia3.lr_for(tiny_backbone("mobilenetv2")) == ia3.default_image_lr == 3e-3
    assert create_strategy("lora").lr_for(tiny_backbone("mobilenetv2")) == 5e-4  # none declared: default_lr
    assert ia3.resolved()[-1]["default_image_lr"] == 3e-3
    assert "default_image_lr" not in create_strategy("lora").resolved()[-1]


def test_lp_ft_is_an_alias_of_full():
    lpft, full = create_strategy("lp-ft"), create_strategy("full")
    assert lpft == full and lpft.resolved() == full.resolved()
    assert [s.spec for s in full.stages()] == ["probe", "full"] and full.stages()[0].selection == "train"
    assert full.stages()[-1].starts_fitted and full.stages()[-1].default_head_lr is None  # the head moves with the body
    random = create_strategy("full", head_init="random")
    assert [s.spec for s in random.stages()] == ["full"] and not random.starts_fitted and random.default_head_lr


def test_every_module_of_the_package_is_discovered():
    import pkgutil

    import headstart.strategies as package
    from headstart.strategies.base import STRATEGIES

    list_strategies()
    modules = {f"headstart.strategies.{m.name}" for m in pkgutil.iter_modules(package.__path__)}
    # a domain-adaptation term's module registers its strategy beside the term (headstart.terms.coral)
    own = {cls.__module__ for cls in STRATEGIES.values() if not cls.__module__.startswith("headstart.terms.")}
    assert own <= modules
    assert modules - {cls.__module__ for cls in STRATEGIES.values()} == {
        "headstart.strategies.base", "headstart.strategies.runner", "headstart.strategies.tuner"}


def test_the_probe_runs_blas_on_one_thread_for_small_fits(monkeypatch):
    """On a few hundred rows OpenBLAS's threads cost more than they save (20x, BENCHMARKS.md probe-speed)."""
    import numpy as np
    from threadpoolctl import threadpool_info

    from headstart.strategies import probe as probe_module

    seen = []

    def record(self, *args, **kwargs):
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        return {"C": 1.0, "val_loss": None, "val_acc": None}

    monkeypatch.setattr(probe_module.Probe, "_solve", record)
    model = AdaptedModel(tiny_backbone("minilm-l6"), 2)
    x, y = torch.zeros(8, model.backbone.feature_dim), np.array([0, 1] * 4)
    probe_module.Probe().solve(model, x, y, x, y)
    monkeypatch.setattr(probe_module, "SMALL", 0)  # a large problem keeps the library's own thread count
    probe_module.Probe().solve(model, x, y, x, y)
    assert seen[0] == {1} and seen[1] == {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


@pytest.mark.parametrize(("backbone", "spec"), PAIRS)
def test_a_saved_model_keeps_exactly_what_the_strategy_declares_it_trains(backbone, spec):
    """The contract's other half: ``Adapter.save`` keeps the head and what ``Strategy.trains`` declares (the
    trained blocks in full, or only a method's injected tensors), checked without training."""
    from types import SimpleNamespace

    from headstart.persist import _saved_tensors

    model, strategy = _model(backbone, spec)
    saved = set(_saved_tensors(SimpleNamespace(model_=model, strategy_=strategy)))
    state = set(model.state_dict())
    head = {k for k in state if k.startswith("head.")}
    body = {k for k in state if k.startswith("backbone.")}
    if not strategy.pretrained:  # a random init is not reproducible across versions: every weight is kept
        expected = head | body
    elif strategy.trains == "head":
        expected = head
    elif strategy.trains in ("injected", "named"):
        expected = head | {k for k in body if strategy.prefix in k}
    elif strategy.trains == "top-k":
        expected = head | {k for k in body if int(k.split(".")[2]) >= model.n_blocks - strategy.k}
    else:
        assert strategy.trains == "body", strategy.trains
        expected = head | body
    assert saved == expected


def test_bitfit_refuses_a_body_without_bias_terms():
    """ModernBERT has no biases at all: BitFit would train the head alone, so it says so instead."""
    model = AdaptedModel(tiny_backbone("minilm-l6"), 2)
    for module in model.backbone.modules():
        if getattr(module, "bias", None) is not None:
            module.bias = None
    with pytest.raises(HeadstartError, match=r"^\S+ has no bias terms for bitfit to train; pick another method"):
        prepare_model(model, create_strategy("bitfit"))


@pytest.mark.parametrize("spec", ["dora", "ln-tuning", "bitfit"])
def test_a_new_parameter_efficient_method_starts_as_the_probe_and_merges_exactly(spec):
    """At step 0 the method changes nothing; after its tensors move, merging for export keeps the function."""
    from headstart.export import merge_adapters

    model, strategy = _model("minilm-l6", spec)
    b = model.backbone
    x = b.preprocess(sample_inputs(b, 4))
    plain = AdaptedModel(tiny_backbone("minilm-l6"), 3)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in plain.state_dict()}, strict=False)
    model.eval(), plain.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), plain(x), atol=1e-5)
        build_param_groups(model, strategy.plan(model.n_blocks), 1e-3, 1e-3, 0.0)
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
        moved = model(x)
        assert not torch.allclose(moved, plain(x), atol=1e-4)
        merge_adapters(model)
        assert torch.allclose(model(x), moved, atol=1e-5)
        assert not any(strategy.prefix in n for n, _ in model.named_parameters()) or spec == "bitfit"


def test_a_soft_prompt_is_attended_to_but_not_pooled():
    model, strategy = _model("minilm-l6", "prompt")
    b = model.backbone
    state = b.preprocess(sample_inputs(b, 2))
    out = b.blocks[0](dict(state))
    n = strategy.tokens
    assert out["hidden"].shape[1] == state["input_ids"].shape[1] + n
    assert out["attention_mask"][:, 1:1 + n].all() and not out["pool_mask"][:, 1:1 + n].any()
    assert torch.equal(out["pool_mask"][:, [0, *range(1 + n, out["pool_mask"].shape[1])]], state["attention_mask"])
    for block in b.blocks[1:]:
        out = block(out)
    assert "pool_mask" in out  # carried through every layer to the pooling
    model.eval()
    with torch.no_grad():
        before = model(dict(state))
        b.blocks[0].soft_prompt.embedding.weight.mul_(3.0)
        assert not torch.allclose(model(dict(state)), before, atol=1e-4)  # the real tokens attend to the prompt


def test_a_prefix_that_repeats_a_layers_own_keys_and_values_leaves_its_attention_as_it_was():
    """Attention over [K; K] with values [V; V] is attention over K, V: so a prefix set to each layer's own keys and
    values (one text, no padding) must give the plain model's features exactly, which checks that the prefix reaches
    the attention's keys and values and the mask grows with it; a padded batch must give each text what it gets
    alone (the padding stays masked behind the prefix)."""
    model, strategy = _model("minilm-l6", "prefix")
    b = model.backbone
    plain = AdaptedModel(tiny_backbone("minilm-l6"), 3)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in plain.state_dict()}, strict=False)
    model.eval(), plain.eval()
    text = b.preprocess(["the movie was not good but the actor was great"])
    with torch.no_grad():
        state = plain.backbone.blocks[0](dict(text))
        for i, layer in enumerate(b.blocks[1:], start=1):
            attention, hidden = layer.self_attention(), state["hidden"]
            layer.attention_prefix = type(layer.attention_prefix)(hidden.shape[1], attention.num_attention_heads,
                                                                  b.feature_dim)
            layer.attention_prefix.encoder.embedding.weight.copy_(
                torch.cat([attention.key(hidden)[0], attention.value(hidden)[0]], dim=-1))
            state = plain.backbone.blocks[i](state)
        assert torch.allclose(model.features(dict(text)), plain.features(dict(text)), atol=1e-5)
        batch = b.preprocess(["great fun", "the movie was not good but the actor was great"])
        assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()  # the first one is padded
        alone = model.features(b.preprocess(["great fun"]))
        assert torch.allclose(model.features(batch)[0], alone[0], atol=1e-5)
        b.blocks[1].attention_prefix.encoder.embedding.weight.mul_(3.0)
        assert not torch.allclose(model.features(dict(text)), plain.features(dict(text)), atol=1e-4)


def test_prefix_tuning_keeps_the_embeddings_block_frozen_so_it_is_cached():
    from headstart.train.model import first_trainable

    model, strategy = _model("minilm-l6", "prefix")
    assert first_trainable(model, strategy.plan(model.n_blocks)) == 1
    assert strategy.stages()[-1].plan(model.n_blocks).only == "attention_prefix"


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "mpnet",
                                    "deberta-v2", "modernbert"])
def test_prefix_tuning_trains_on_every_family_whose_attention_takes_it_and_names_the_others(family):
    from headstart.backbones.text import HFTextBackbone

    from .test_hf_families import BLOCKWISE
    from .test_hf_families import _model as family_model

    tokenizer = tiny_backbone("minilm-l6").tokenizer
    body = HFTextBackbone(family_model(*BLOCKWISE[family], tokenizer, family), tokenizer, name=f"hf:{family}",
                          pretrained=True, source="test")
    model, strategy = AdaptedModel(body, 2), create_strategy("prefix")
    if family in ("distilbert", "mpnet", "deberta-v2", "modernbert"):
        with pytest.raises(HeadstartError, match=rf"^prefix tuning passes learned keys and values to each layer's "
                                                 rf"attention, which hf:{family} \({family}\) does not take; use "):
            prepare_model(model, strategy)
        return
    prepare_model(model, strategy)
    build_param_groups(model, strategy.stages()[-1].plan(model.n_blocks), 1e-3, 1e-3, 0.0)
    logits = model(body.preprocess(["a good film", "the plot was not fun at all"]))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert sum("attention_prefix" in n for n in grads) == model.n_blocks - 1
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_a_race_refuses_prompt_tuning_on_images_before_any_run(tmp_path):
    from headstart.race import RaceSpec, prepare_race

    from .test_training import _image_task

    spec = RaceSpec("img", "mobilenetv2", strategies=["probe", "prompt"], budgets=[4])
    with pytest.raises(HeadstartError, match=r"^prompt applies to text backbones only; mobilenetv2 is an image"):
        prepare_race(spec, _image_task(20))


@pytest.mark.parametrize("backbone", ["minilm-l6", "mobilenetv2"])
def test_bottleneck_adapters_start_as_the_pretrained_body_and_leave_its_statistics_alone(backbone):
    plain = AdaptedModel(tiny_backbone(backbone), 3)
    x = plain.backbone.preprocess(sample_inputs(plain.backbone, 4))
    plain.eval()
    with torch.no_grad():
        before = plain(x)
    model, strategy = _model(backbone, "adapter")
    model.head.load_state_dict(plain.head.state_dict())
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), before, atol=1e-5)  # up-projections at zero, BatchNorm untouched
        adapters = [blk.bottleneck for blk in model.backbone.blocks[1:]]
        assert len(adapters) == model.n_blocks - 1 and not hasattr(model.backbone.blocks[0], "bottleneck")
        adapters[-1].up.weight.fill_(0.1)
        assert not torch.allclose(model(x), before, atol=1e-4)
