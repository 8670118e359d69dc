"""One fit, printed as JSON (per-epoch training and validation loss): run by ``test_distributed.py`` in one
process and under ``accelerate launch --multi_gpu --num_processes 2`` (torchrun; gloo on CPUs) at the same
global batch."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from headstart import Adapter  # noqa: E402
from headstart.train.distributed import is_main_process  # noqa: E402
from tests.conftest import tiny_backbone  # noqa: E402


def no_dropout(pretrained: bool):
    """The tiny text backbone without dropout, so both runs draw nothing at random while training."""
    backbone = tiny_backbone("minilm-l6", pretrained)
    for m in backbone.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return backbone


def main() -> None:
    rng = np.random.default_rng(0)
    pos, neg = ["good movie", "great fun", "love it"], ["bad movie", "awful film", "hate it"]
    texts = [f"{rng.choice(pos if i % 2 == 0 else neg)} {i}" for i in range(60)]
    labels = [i % 2 for i in range(60)]
    clf = Adapter(no_dropout, "full", epochs=4, batch_size=int(sys.argv[1]), lr=1e-3, precision="fp32",
                  patience=10, feature_cache=None, progress=False)
    clf.fit(texts[:44], labels[:44], val=(texts[44:], labels[44:]))
    if is_main_process():
        print(json.dumps({"processes": int(os.environ.get("WORLD_SIZE", "1")),
                          "train": [r.train_loss for r in clf.result_.records if r.train_loss is not None],
                          "val": [r.val_loss for r in clf.result_.records if r.epoch > 0]}))


if __name__ == "__main__":
    main()
