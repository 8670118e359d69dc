"""``ewc``: elastic weight consolidation (Kirkpatrick et al., PNAS 2017): keep the weights the starting model's
output depends on near where they started.

``value = ½ Σ F̂ᵢ (θᵢ − θ*ᵢ)²`` over every backbone parameter the stage trains, θ* snapshotted when the
stage starts. F is the diagonal Fisher information of the starting model's output
(``train/reference.py``): the previous task's head in continual learning, the pretraining classifier
where the backbone has one (MobileNetV2's ImageNet head on the user's images), else the similarity
structure of its features. It is the *true* Fisher, labels drawn from the model's own predictive
distribution (seeded), so it needs no labels of the task it protects; it is estimated as Avalanche's
``EWCPlugin`` does, from squared mini-batch gradients averaged over batches, on up to ``samples``
examples: the previous task's rehearsal buffer when there is one (``replay``), else this fit's training
inputs. F̂ is F divided by its mean, so the weight reads as L2-SP's (``l2sp`` is this with F̂ = 1): the
same pull on average, redistributed towards the weights the output depends on; unnormalised Fisher
values span orders of magnitude across backbones, which is why the paper's λ (10²–10⁴) does not carry
over from one model to another.

Avalanche (``avalanche.training.plugins.EWCPlugin``) and TLlib have the same computation; neither is a
dependency: Avalanche's plugins drive their own training strategies and pin older torch releases, and the
sum is short. The default weight, 1, is measured (``benchmarks/forgetting.py --weights``, BENCHMARKS.md
"Forgetting"): on MiniLM-L6 fine-tuned on rotten-tomatoes at 128 labels per class it is the largest
weight swept (0.001 to 100) whose selection accuracy stays within noise of no guard (0.769 against
0.760); it keeps 96.8% of the pretrained features' accuracy on 20newsgroups (no guard: 71.7%; ``l2sp``
at its default: 93.8%), and at 10 selection accuracy falls to 0.696. It is L2-SP's default too, as the
normalisation intends.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..declare import option
from ..train.reference import reference_for
from .base import Term, register_term


@register_term
@dataclass
class EWC(Term):
    name = "ewc"
    kind = "guard"
    summary = "½·Σ F̂·(θ − θ*)², F̂ the starting model's Fisher divided by its mean (EWC)"
    default_weight = 1.0
    behaviour_version = 2  # the default weight went from 0.01 to 1: runs at the old default are not reused
    samples: int = option(512, "examples the Fisher is estimated on (the rehearsal buffer, else training inputs)",
                          low=1)

    def prepare(self, ctx) -> None:
        model = ctx.model
        params = [p for p in model.backbone.parameters() if p.requires_grad]
        self.reference = reference_for(model, ctx.previous, ctx.device)
        self.fisher = self._fisher(ctx, params)
        self.pairs = [(p, p.detach().clone(), f) for p, f in zip(params, self.fisher)]

    def _fisher(self, ctx, params: list[Tensor]) -> list[Tensor]:
        model, source = ctx.model, ctx.sources.get("replay", ctx.train)
        fisher = [torch.zeros_like(p) for p in params]
        if not params:
            return fisher
        generator = ctx.generator(self.name)
        order = torch.randperm(len(source), generator=generator)[: self.samples].tolist()
        size = max(2, ctx.cfg.batch_size)
        batches = [order[i:i + size] for i in range(0, len(order), size)]
        batches = [b for b in batches if self.reference.usable(len(b))]
        training = model.training
        model.eval()  # no dropout drawn: the curvature of the model as it predicts
        for index in batches:
            state, _ = source.batch(index)
            state = {k: v.to(ctx.device) for k, v in state.items()}
            logits = self.reference.logits(model.features(state, ctx.boundary))
            with torch.no_grad():
                drawn = torch.multinomial(torch.softmax(logits.detach().cpu().double(), dim=1), 1,
                                          generator=generator)[:, 0].to(ctx.device)
            loss = torch.nn.functional.cross_entropy(logits, drawn)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for f, g in zip(fisher, grads):
                if g is not None:
                    f += g.detach() ** 2
        model.train(training)
        total = sum(f.sum() for f in fisher)
        count = sum(f.numel() for f in fisher)
        mean = float(total) / max(1, count)
        return [f / mean for f in fisher] if mean > 0 else fisher

    def value(self, model, batch, ctx) -> Tensor:
        if not self.pairs:
            return torch.zeros((), device=ctx.device)
        return 0.5 * sum((f * (p - p0) ** 2).sum() for p, p0, f in self.pairs)

    def describe(self) -> str:
        return f"{self.name} × {self.resolved_weight:g} (Fisher of {self.reference.what})" \
            if hasattr(self, "reference") else super().describe()
