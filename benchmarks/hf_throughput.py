"""Forward and training throughput of every ``hf:`` family at its common base size, beside the packaged backbones.

    python benchmarks/hf_throughput.py            # resumes: families already in the results file are skipped
    python benchmarks/hf_throughput.py --redo     # measure every family again

Each model is built with ``from_config`` (speed does not depend on the weights) at the size of its usual
checkpoint, wrapped as headstart wraps a hub checkpoint (block by block), and timed on random inputs of the
usual shape: 128 tokens of text, 224 × 224 pixels. Forward: eval mode, no gradients, batch 16. Training:
a full fine-tune step (forward, cross-entropy on a new head, backward, AdamW), batch 8. Tokenising and image
processing are not included. One warm-up batch each, then the median of the timed batches; one process per
family.
Results: ``benchmarks/results/hf_throughput.jsonl``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "hf_throughput.jsonl"
TEXT, IMAGE = 128, 224  # tokens per text, pixels per side
FORWARD_BATCH, TRAIN_BATCH, TIMED = 16, 8, 3

#: name -> (modality, usual checkpoint, config factory); None: a packaged backbone, built by its registry name
MODELS = {
    "minilm-l6": ("text", "packaged all-MiniLM-L6-v2", None),
    "bert": ("text", "bert-base-uncased", lambda tf: tf.BertConfig()),
    "distilbert": ("text", "distilbert-base-uncased", lambda tf: tf.DistilBertConfig()),
    "roberta": ("text", "roberta-base", lambda tf: tf.RobertaConfig(max_position_embeddings=514, vocab_size=50265)),
    "mpnet": ("text", "all-mpnet-base-v2", lambda tf: tf.MPNetConfig()),
    "deberta-v2": ("text", "deberta-v3-base", lambda tf: tf.DebertaV2Config(  # its defaults are the xlarge model's
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        vocab_size=128100, relative_attention=True, position_buckets=256, norm_rel_ebd="layer_norm",
        share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False, max_relative_positions=-1)),
    "modernbert": ("text", "ModernBERT-base", lambda tf: tf.ModernBertConfig()),
    "mobilenetv2": ("image", "packaged MobileNetV2", None),
    "efficientnet-lite0": ("image", "packaged EfficientNet-Lite0", None),
    "vit": ("image", "vit-base-patch16-224", lambda tf: tf.ViTConfig()),
    "deit": ("image", "deit-small-patch16-224", lambda tf: tf.DeiTConfig(hidden_size=384, num_attention_heads=6,
                                                                        intermediate_size=1536)),
    "dinov2": ("image", "dinov2-small", lambda tf: tf.Dinov2Config(hidden_size=384, num_attention_heads=6,
                                                                    image_size=518, patch_size=14)),
    "clip_vision_model": ("image", "clip-vit-base-patch32 (vision tower)",
                          lambda tf: tf.CLIPVisionConfig(patch_size=32)),
    "convnext": ("image", "convnext-tiny-224", lambda tf: tf.ConvNextConfig()),
    "resnet": ("image", "resnet-50", lambda tf: tf.ResNetConfig()),
    "swin": ("image", "swin-tiny-patch4-window7-224", lambda tf: tf.SwinConfig()),
}


def build(name: str):
    import transformers as tf

    from headstart.backbones import create_backbone
    from headstart.backbones.hf_vision import HFVisionBackbone
    from headstart.backbones.text import HFTextBackbone, tiny_tokenizer

    modality, _, config = MODELS[name]
    if config is None:
        return create_backbone(name) if modality == "text" else create_backbone(name, image_size=IMAGE)
    model = tf.AutoModel.from_config(config(tf))
    if modality == "text":
        return HFTextBackbone(model, tiny_tokenizer(), name=f"hf:{name}", pretrained=True, source="from_config",
                              max_length=TEXT)
    return HFVisionBackbone(model, tf.ViTImageProcessorPil(size={"height": IMAGE, "width": IMAGE}), name=f"hf:{name}",
                            pretrained=True, source="from_config")


def inputs(backbone, batch: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    if backbone.modality == "text":
        return {"input_ids": torch.randint(5, 1000, (batch, TEXT), generator=gen),  # every vocabulary has 1,000
                "attention_mask": torch.ones(batch, TEXT, dtype=torch.long)}
    key = "pixels" if hasattr(backbone, "processor") else "x"
    return {key: torch.randn(batch, 3, IMAGE, IMAGE, generator=gen)}


def _timed(step, batch: int) -> float:
    step()  # warm-up: allocations, kernels chosen
    seconds = []
    for _ in range(TIMED):
        tic = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - tic)
    return batch / statistics.median(seconds)


def measure(name: str) -> dict:
    from headstart.train import AdaptedModel

    backbone = build(name)
    params = backbone.num_parameters()
    state = inputs(backbone, FORWARD_BATCH)
    backbone.eval()

    def forward():
        with torch.no_grad():
            backbone.forward_features(state)

    forward_rate = _timed(forward, FORWARD_BATCH)
    model = AdaptedModel(backbone, 2).train()
    batch, labels = inputs(backbone, TRAIN_BATCH), torch.tensor([0, 1] * (TRAIN_BATCH // 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def train():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(batch), labels).backward()
        optimizer.step()

    train_rate = _timed(train, TRAIN_BATCH)
    modality, checkpoint, _ = MODELS[name]
    return {"key": name, "family": name, "modality": modality, "checkpoint": checkpoint, "params": params,
            "blocks": len(backbone.blocks), "forward_per_s": forward_rate, "train_per_s": train_rate,
            "threads": torch.get_num_threads()}


def table(rows: list[dict]) -> str:
    base = {r["modality"]: r for r in rows if r["key"] in ("minilm-l6", "mobilenetv2")}
    lines = ["| family | modality | as in | parameters | blocks | forward, examples/s | full fine-tune, examples/s "
             "| time per example vs the packaged default |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = base.get(r["modality"])
        forward, train = ((ref["forward_per_s"] / r["forward_per_s"], ref["train_per_s"] / r["train_per_s"])
                          if ref and ref is not r else (None, None))
        slower = f"{forward:.1f}× forward, {train:.1f}× training" if forward else "1 (the default)"
        lines.append(f"| `{r['family']}` | {r['modality']} | {r['checkpoint']} | {r['params'] / 1e6:.1f} M | "
                     f"{r['blocks']} | {r['forward_per_s']:.1f} | {r['train_per_s']:.1f} | {slower} |")
    return ("Every `hf:` family at the size of its usual checkpoint, built with `from_config` (speed does not depend "
            "on the weights) and run block by block as headstart runs a hub checkpoint, beside the packaged backbones "
            "(`minilm-l6` for text, `mobilenetv2` for images: the last column compares with them). "
            f"Random inputs of the usual shape ({TEXT} tokens; {IMAGE} × {IMAGE} pixels, MobileNetV2 and "
            f"EfficientNet-Lite0 at {IMAGE} px too); forward in eval mode without gradients, batch {FORWARD_BATCH}; "
            f"training a full fine-tune step (forward, cross-entropy, backward, AdamW), batch {TRAIN_BATCH}; the "
            f"median of {TIMED} timed batches after a warm-up, one process per family. Tokenising and image "
            "processing are not counted. A probe costs one forward pass per example (its features are then "
            "cached), so the forward rate says how long a probe's first run takes; a fine-tune costs about "
            "epochs × examples ÷ the training rate.\n\n" + "\n".join(lines)
            + "\n\nRows: `benchmarks/results/hf_throughput.jsonl`.")


def main() -> None:
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redo", action="store_true", help="measure every family again")
    parser.add_argument("--only", nargs="*", help="these families only")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # measure one family in this process (the child)
    args = parser.parse_args()
    order = list(MODELS)
    if args.one:
        row = measure(args.one)
        print(f"  forward {row['forward_per_s']:.1f}/s, train {row['train_per_s']:.1f}/s", flush=True)
        merge_jsonl(RESULTS, [row], order=lambda r: order.index(r["key"]) if r["key"] in order else len(order))
        return
    done = {r["key"] for r in read_jsonl(RESULTS)}
    for name in args.only or order:
        if name in done and not args.redo:
            continue
        print(f"{name} ...", flush=True)
        # one process per family: each starts with the same free memory, and a large one cannot crowd the next
        subprocess.run([sys.executable, __file__, "--one", name], check=True)
    rows = read_jsonl(RESULTS)
    write_section("hf-throughput", "Hugging Face families: forward and training throughput at base size", table(rows))


if __name__ == "__main__":
    main()
