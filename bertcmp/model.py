"""Models: the encoder (pretrained from the Hub or a local directory, or a tiny one from scratch), its
tokenizer, and the classification head: the shared one (the same for every encoder, so a comparison compares
encoders) or each family's native one (AutoModelForSequenceClassification, with its pretrained parts).
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Sequence

import torch
from omegaconf import DictConfig
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from torch import nn
from transformers import (AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer, BertConfig,
                          ModernBertConfig, PreTrainedModel, PreTrainedTokenizerFast)

from bertcmp.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # the names both families use
POSITIONS = {"bert": 512, "modernbert": 8192}  # how many tokens each family's pretrained models read


class SequenceClassifier(nn.Module):
    """Encoder -> pooled vector ([CLS] or mean of real tokens) -> dropout -> linear layer to class logits."""

    def __init__(self, encoder: PreTrainedModel, num_labels: int = 2, pooling: str = "cls", dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        else:
            pooled = hidden[:, 0]
        return self.head(self.dropout(pooled))

    def save(self, directory: Path) -> None:
        """All weights (model.safetensors) and the encoder's config.json."""
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                  str(directory / "model.safetensors"))
        self.encoder.config.save_pretrained(directory)


class NativeClassifier(nn.Module):
    """The family's own classifier (AutoModelForSequenceClassification): for BERT its pretrained pooler (dense +
    tanh on [CLS]), dropout and a linear layer; for ModernBERT its pretrained head (dense, GELU, LayerNorm) on
    the [CLS] or mean vector (model.pooling), dropout and a linear layer. Each family's own dropout."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model

    @property
    def config(self):
        return self.model.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def save(self, directory: Path) -> None:
        """A standard transformers directory: AutoModelForSequenceClassification.from_pretrained loads it."""
        self.model.save_pretrained(directory)


# ---------------------------------------------------------------------------------------------- tokenizers


def make_tokenizer(cfg: DictConfig, train_texts: Sequence[str]) -> PreTrainedTokenizerFast:
    """The pretrained model's own tokenizer, or, from scratch, one of the model's family trained on the texts."""
    if cfg.pretrained:
        return load_tokenizer(cfg.pretrained)
    return train_tokenizer(cfg.name, train_texts, cfg.scratch.vocab_size)


def _wordpiece_vocab(texts: Sequence[str], vocab_size: int, normalizer, pre_tokenizer) -> dict[str, int]:
    """Special tokens, every character (alone and as a ##continuation), then the most frequent words.

    tokenizers' WordPieceTrainer breaks ties between equally frequent merges differently from run to run,
    which would make scratch runs irreproducible; this vocabulary is the same for the same texts."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in counts for c in word})
    tokens = SPECIAL_TOKENS + chars + [f"##{c}" for c in chars]
    known = set(tokens)
    by_frequency = sorted((w for w in counts if w not in known), key=lambda w: (-counts[w], w))
    tokens += by_frequency[: max(vocab_size - len(tokens), 0)]
    return {token: i for i, token in enumerate(tokens)}


def load_tokenizer(pretrained: str) -> PreTrainedTokenizerFast:
    try:
        tokenizer = AutoTokenizer.from_pretrained(pretrained)
    except Exception as err:
        raise _unreachable(pretrained, err) from err
    if not tokenizer.is_fast:
        raise ModelError(f"model.pretrained={pretrained!r} has no fast tokenizer (tokenizer.json); "
                         "bertcmp needs one to tokenize the data in one pass")
    return tokenizer


def train_tokenizer(family: str, texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A tokenizer of the model's own family trained on `texts`: lower-cased WordPiece for BERT,
    byte-level BPE for ModernBERT. Both put [CLS] first and [SEP] last, as the pretrained ones do."""
    if str(family) == "bert":
        normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
        vocab = _wordpiece_vocab(texts, vocab_size, normalizer, pre_tokenizer)
        tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
        tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    else:
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


# ---------------------------------------------------------------------------------------------- encoders


def _pretrained_config(pretrained: str):
    try:
        return AutoConfig.from_pretrained(pretrained)
    except Exception as err:
        raise _unreachable(pretrained, err) from err


def usable_length(cfg: DictConfig, max_length: int) -> int:
    """`max_length`, or the most the encoder reads when that is less (said in one warning line): each encoder
    reads as far as it can, so a sweep may ask every model for more than the shortest of them takes. Called
    before any data loads, it also fails fast when the pretrained model is not there."""
    if cfg.pretrained:
        config = _pretrained_config(cfg.pretrained)
        if config.model_type != str(cfg.name):
            log.warning("model.pretrained=%s is a %r model but model.name=%s", cfg.pretrained, config.model_type,
                        cfg.name)
        limit = config.max_position_embeddings
    else:
        limit = POSITIONS[str(cfg.name)]
    if max_length <= limit:
        return max_length
    log.warning("data.max_length=%d is more than %s reads: using %d tokens", max_length,
                cfg.pretrained or f"a {cfg.name} encoder", limit)
    return limit


def resolve_attention(spec: str, device: torch.device) -> str:
    """`auto`: flash attention when flash-attn is installed and the GPU has it (Ampere or newer), else SDPA."""
    if spec != "auto":
        return spec
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8:
        try:
            import flash_attn  # noqa: F401
            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


def load_encoder(pretrained: str, attention: str = "sdpa", auto: type = AutoModel,
                 **config_changes) -> PreTrainedModel:
    """A pretrained model from a Hub id or a local directory (what `save_pretrained` writes): the encoder, or
    with `auto` another of its Auto classes, its config changed by `config_changes`."""
    config = _pretrained_config(pretrained)
    config.update(config_changes)
    try:
        return auto.from_pretrained(pretrained, config=config, attn_implementation=attention)
    except Exception as err:
        raise ModelError(f"model.pretrained={pretrained!r} could not be loaded with model.attn_implementation="
                         f"{attention} ({type(err).__name__}: {str(err).splitlines()[0]})") from err


def scratch_encoder(family: str, scratch: DictConfig, tokenizer: PreTrainedTokenizerFast, attention: str = "sdpa",
                    auto: type = AutoModel, **config_changes) -> PreTrainedModel:
    """A randomly initialised encoder (or, with `auto`, another model) of the given family and sizes, matched to
    `tokenizer`."""
    sizes = dict(vocab_size=len(tokenizer), hidden_size=scratch.hidden_size,
                 num_hidden_layers=scratch.num_layers, num_attention_heads=scratch.num_heads,
                 intermediate_size=scratch.intermediate_size, pad_token_id=tokenizer.pad_token_id)
    if str(family) == "bert":
        config = BertConfig(max_position_embeddings=POSITIONS["bert"], **sizes)
    else:
        # ModernBERT's default special ids (50281-50283) lie outside a small vocabulary: take the tokenizer's
        config = ModernBertConfig(bos_token_id=tokenizer.cls_token_id, cls_token_id=tokenizer.cls_token_id,
                                  eos_token_id=tokenizer.sep_token_id, sep_token_id=tokenizer.sep_token_id,
                                  max_position_embeddings=POSITIONS["modernbert"], **sizes)
    config.update(config_changes)
    try:
        return auto.from_config(config, attn_implementation=attention)
    except (ImportError, ValueError) as err:
        raise ModelError(f"model.attn_implementation={attention} does not work here: {str(err).splitlines()[0]}; "
                         "use model.attn_implementation=sdpa") from err


def _unreachable(pretrained: str, err: Exception) -> ModelError:
    if Path(pretrained).expanduser().is_dir():
        return ModelError(f"model.pretrained={pretrained!r} is a directory but not a saved model "
                          f"({type(err).__name__}: {str(err).splitlines()[0]}); it needs config.json, "
                          "the weights and tokenizer files as save_pretrained writes them")
    return ModelError(f"model.pretrained={pretrained!r} is neither a local directory nor reachable on the "
                      "Hugging Face Hub; download it and pass model.pretrained=/local/dir, "
                      "or try the offline preset experiment=smoke")


def build_classifier(cfg: DictConfig, tokenizer: PreTrainedTokenizerFast,
                     device: torch.device = torch.device("cpu")) -> nn.Module:
    """The model the config asks for: pretrained when `pretrained` is set, else from scratch; with the shared head
    or the family's native one. Either maps (input_ids, attention_mask) to two logits and can `save` itself."""
    attention = resolve_attention(str(cfg.attn_implementation), device)
    build = partial(load_encoder, cfg.pretrained, attention) if cfg.pretrained \
        else partial(scratch_encoder, cfg.name, cfg.scratch, tokenizer, attention)
    if cfg.head == "native":
        model = NativeClassifier(build(auto=AutoModelForSequenceClassification, **_native_head(cfg)))
    else:
        model = SequenceClassifier(build(), num_labels=2, pooling=str(cfg.pooling), dropout=cfg.dropout)
    vocabulary = model.config.vocab_size if cfg.head == "native" else model.encoder.config.vocab_size
    if vocabulary < len(tokenizer):
        raise ModelError(f"model.pretrained={cfg.pretrained!r}: its tokenizer has {len(tokenizer)} tokens but the "
                         f"encoder only {vocabulary} embeddings")
    return model


def _native_head(cfg: DictConfig) -> dict:
    """The config of the family's own two-class head."""
    if str(cfg.name) == "modernbert":
        return {"num_labels": 2, "classifier_pooling": str(cfg.pooling)}
    if cfg.pooling != "cls":
        raise ConfigError(f"model.pooling={cfg.pooling} with model.head=native: BERT's own head reads [CLS] through "
                          "its pooler; use model.pooling=cls, or model.head=shared for mean pooling")
    return {"num_labels": 2}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
