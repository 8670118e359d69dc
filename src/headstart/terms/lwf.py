"""``lwf``: learning without forgetting (Li & Hoiem, ECCV 2016 / TPAMI 2018): keep the starting model's outputs on
the new task's own inputs.

Before the first step, the starting model's pooled features of every training example are recorded
once (the paper records its responses once, before training; with ``augment`` they are the clean
inputs' features). Each step then adds ``T² · KL(softmax(r(teacher)/T) ‖ softmax(r(student)/T))``,
``r`` the output the guard keeps (``train/reference.py``: the previous task's head in continual
learning, the pretraining classifier where the backbone has one, else each example's similarity to the
others of its batch), ``T = temperature`` (2, the paper's), averaged over the batch. No example of an
earlier task is needed. The student's features are the ones the data term computed (shared per step);
the teacher's are looked up by the batch's positions.

The default weight depends on the output kept, because the two KLs differ in scale: a distribution over
the batch's other examples carries far more than one over a few classes. Keeping a sentence encoder's
similarity structure it is 0.001, measured (``benchmarks/forgetting.py --weights``, BENCHMARKS.md
"Forgetting"): on MiniLM-L6 fine-tuned on rotten-tomatoes at 128 labels per class it is the only weight
swept (0.001 to 10) whose selection accuracy stays within noise of no guard (0.745 against 0.760), and
it keeps 85.3% of the pretrained features' accuracy on 20newsgroups where no guard keeps 71.7%; from
0.1 up it keeps everything and the task pays (0.716). Keeping a classifier's outputs (the previous
task's head, a pretraining classifier) it is the paper's λ_o, 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..declare import option
from ..train.reference import reference_for
from .base import Term, register_term

#: the default weight when the output kept is a sentence encoder's similarity structure (measured)
SIMILARITY_WEIGHT = 0.001


@register_term
@dataclass
class LwF(Term):
    name = "lwf"
    kind = "guard"
    summary = ("T²·KL between the starting model's outputs and the current ones on the training inputs (LwF); "
               f"weight {SIMILARITY_WEIGHT:g} when they are a sentence encoder's similarity structure")
    default_weight = 1.0  # keeping a classifier's outputs; ``SIMILARITY_WEIGHT`` for a similarity structure
    behaviour_version = 2  # the default on a sentence encoder went from 1 to 0.001: older runs are not reused
    temperature: float = option(2.0, "the distillation temperature T", low=0.0, low_open=True)

    @torch.no_grad()
    def prepare(self, ctx) -> None:
        model, source = ctx.model, ctx.train
        self.reference = reference_for(model, ctx.previous, ctx.device)
        training = model.training
        model.eval()
        size = max(1, ctx.cfg.eval_batch_size)
        chunks = []
        for start in range(0, len(source), size):
            state, _ = source.batch(range(start, min(start + size, len(source))))  # no rng: never augmented
            state = {k: v.to(ctx.device) for k, v in state.items()}
            chunks.append(model.features(state, ctx.boundary).float())
        model.train(training)
        self.teacher = torch.cat(chunks) if chunks else torch.empty(0, model.backbone.feature_dim, device=ctx.device)

    def value(self, model, batch, ctx) -> Tensor:
        if not self.reference.usable(len(batch.index)):
            return torch.zeros((), device=ctx.device)
        t = self.temperature
        student = self.reference.logits(batch.features(model, ctx.boundary)) / t
        teacher = self.reference.logits(self.teacher[torch.as_tensor(batch.index, device=self.teacher.device)]) / t
        kl = torch.nn.functional.kl_div(torch.log_softmax(student, dim=1), torch.log_softmax(teacher, dim=1),
                                        reduction="batchmean", log_target=True)
        return kl * t * t

    @property
    def resolved_weight(self) -> float:
        if self.weight is None and getattr(self, "reference", None) is not None and \
                self.reference.kind == "similarity":
            return SIMILARITY_WEIGHT
        return super().resolved_weight

    def describe(self) -> str:
        return f"{self.name} × {self.resolved_weight:g} (keeps {self.reference.what})" \
            if hasattr(self, "reference") else super().describe()
