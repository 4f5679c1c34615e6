"""Models: the encoder (pretrained from the Hub or a local directory, or a tiny one from scratch), its
tokenizer, and the classification head: the shared one (the same for every encoder, so a comparison compares
encoders) or each family's native one (AutoModelForSequenceClassification, with its pretrained parts).
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from functools import partial
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import torch
from omegaconf import DictConfig
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from torch import nn
from transformers import (AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer, BertConfig,
                          ModernBertConfig, PreTrainedModel, PreTrainedTokenizerFast)

from bertcmp import hub
from bertcmp.errors import BertcmpError, ConfigError, ModelError, summary

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # the names both families use
# transformers' defaults for these configs are the published base models' (bert-base-uncased, ModernBERT-base):
# their shapes, vocabulary sizes and position limits
BASE_CONFIGS = {"bert": BertConfig, "modernbert": ModernBertConfig}


class SequenceClassifier(nn.Module):
    """Encoder -> pooled vector ([CLS] or mean of real tokens) -> dropout -> linear layer to class logits.

    [CLS] is the first token for every encoder bertcmp knows; `cls_last` reads the last real token instead
    (tokenizers such as XLNet's put it at the end)."""

    def __init__(self, encoder: PreTrainedModel, num_labels: int = 2, pooling: str = "cls", dropout: float = 0.1,
                 cls_last: bool = False):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.cls_last = cls_last
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)
        # DistilBERT and others take no token_type_ids: pass them only to an encoder that reads them
        self.reads_type_ids = "token_type_ids" in inspect.signature(encoder.forward).parameters

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Class logits; no `attention_mask` means no padding (every token is real)."""
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None and self.reads_type_ids else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if attention_mask is None:
            pooled = hidden.mean(1) if self.pooling == "mean" else hidden[:, -1 if self.cls_last else 0]
        elif self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        elif self.cls_last:  # padding is on the right: the last real token is at length - 1
            pooled = hidden[torch.arange(len(hidden), device=hidden.device), attention_mask.sum(1) - 1]
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

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    def save(self, directory: Path) -> None:
        """A standard transformers directory: AutoModelForSequenceClassification.from_pretrained loads it."""
        self.model.save_pretrained(directory)


# ---------------------------------------------------------------------------------------------- tokenizers


def make_tokenizer(cfg: DictConfig, train_texts: Sequence[str]) -> PreTrainedTokenizerFast:
    """The pretrained model's own tokenizer, or, from scratch, one of the model's family trained on the texts."""
    if cfg.pretrained:
        return load_tokenizer(cfg.pretrained)
    return train_tokenizer(cfg.name, train_texts, cfg.scratch.vocab_size or _base(cfg.name).vocab_size)


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
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",  # BERT's: the second text has type 1
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    # what the family's models read: ModernBERT takes no token_type_ids (as its pretrained tokenizer says)
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if str(family) == "bert" else [])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_input_names=inputs)


# ---------------------------------------------------------------------------------------------- encoders


def _pretrained_config(pretrained: str):
    try:
        return AutoConfig.from_pretrained(pretrained)
    except Exception as err:
        raise _unreachable(pretrained, err) from err


class Encoder(NamedTuple):
    """What the config's encoder is, read from its config before any data loads."""
    family: str      # the model_type (bert, modernbert, roberta, deberta-v2, ...): what runs are grouped by
    max_length: int  # data.max_length, or the most the encoder reads when that is less


# Families whose position ids start after the padding index (fairseq's convention): they read
# max_position_embeddings - pad_token_id - 1 tokens (RoBERTa: 514 positions, 512 tokens)
OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "roberta-prelayernorm", "data2vec-text", "xmod",
                    "longformer", "mpnet", "ibert", "esm"}


def describe_encoder(cfg: DictConfig, max_length: int) -> Encoder:
    """The encoder's family and the length used: each encoder reads as far as it can, so a sweep may ask every
    model for more than the shortest of them takes (lowered with one warning line). Called before any data
    loads, it also fails fast when the pretrained model is not there."""
    if cfg.pretrained:
        config = _pretrained_config(cfg.pretrained)
        family = config.model_type
        if str(cfg.name) != "auto" and family != str(cfg.name):
            log.warning("model.pretrained=%s is a %r model but model.name=%s (model=auto names runs by the model's "
                        "own type)", cfg.pretrained, family, cfg.name)
            family = str(cfg.name)
        limit = reads_tokens(config)
    else:
        scratch_shape(cfg.name, cfg.scratch)  # sizes that do not fit together fail here, before the data loads
        family, limit = str(cfg.name), _base(cfg.name).max_position_embeddings
    if max_length <= limit:
        return Encoder(family, max_length)
    log.warning("data.max_length=%d is more than %s reads: using %d tokens", max_length,
                cfg.pretrained or f"a {cfg.name} encoder", limit)
    return Encoder(family, limit)


def reads_tokens(config) -> int:
    """How many tokens an encoder with this config reads."""
    limit = getattr(config, "max_position_embeddings", None) or 512
    if config.model_type in OFFSET_POSITIONS:
        limit -= (config.pad_token_id or 0) + 1
    return limit


def resolve_attention(spec: str, device: torch.device, dtype: Optional[torch.dtype] = None) -> str:
    """`auto` is PyTorch's SDPA, as transformers' own default: on a GPU it runs FlashAttention's kernel itself for
    a batch without padding (the loop passes no mask for those) and a masked kernel for a padded one, with no host
    sync, where flash-attn's transformers path finds each padded batch's lengths on the host in every layer.
    flash_attention_2 (the flash-attn package) on request, and only under bf16 / fp16: it rejects fp32 inputs."""
    if spec == "flash_attention_2" and dtype not in (torch.bfloat16, torch.float16):
        raise ConfigError("model.attn_implementation=flash_attention_2 runs only in half precision: use "
                          "trainer.precision=bf16 (or fp16), or model.attn_implementation=sdpa")
    return "sdpa" if spec == "auto" else spec


def load_encoder(pretrained: str, attention: str = "sdpa", auto: type = AutoModel,
                 **config_changes) -> PreTrainedModel:
    """A pretrained model from a Hub id or a local directory (what `save_pretrained` writes): the encoder, or
    with `auto` another of its Auto classes, its config changed by `config_changes`."""
    config = _pretrained_config(pretrained)
    config.update(config_changes)
    try:
        # fp32 whatever the checkpoint was saved in (transformers 5 loads a bf16 one as bf16): the optimizer keeps fp32
        # weights, so small updates are not lost, and the precision is the autocast's business
        return auto.from_pretrained(pretrained, config=config, attn_implementation=attention, dtype=torch.float32)
    except Exception as err:
        raise ModelError(f"model.pretrained={pretrained!r} could not be loaded with model.attn_implementation="
                         f"{attention} ({summary(err)})") from err


def _base(family: str):
    return BASE_CONFIGS[str(family)]()


# model.scratch.* -> the name transformers' configs give each size
_SIZE_NAMES = {"hidden_size": "hidden_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
               "intermediate_size": "intermediate_size"}


def scratch_shape(family: str, scratch: DictConfig) -> dict[str, int]:
    """The sizes of an encoder from scratch, named as its transformers config names them: model.scratch.*, a null
    one the family's base model's (model/scratch=base: BERT-base's 12 layers of 3,072, ModernBERT-base's 22 of
    1,152), checked to fit together."""
    base = _base(family)
    shape = {name: getattr(base, name) if scratch[key] is None else scratch[key] for key, name in _SIZE_NAMES.items()}
    hidden, heads = shape["hidden_size"], shape["num_attention_heads"]
    if hidden % heads:
        raise ConfigError(f"model.scratch.hidden_size={hidden} must be divisible by model.scratch.num_heads={heads}")
    if str(family) == "modernbert" and (hidden // heads) % 2:
        raise ConfigError(f"model.scratch.hidden_size / num_heads = {hidden // heads} must be even for ModernBERT "
                          "(rotary embeddings)")
    return shape


def scratch_encoder(family: str, scratch: DictConfig, tokenizer: PreTrainedTokenizerFast, attention: str = "sdpa",
                    auto: type = AutoModel, **config_changes) -> PreTrainedModel:
    """A randomly initialised encoder (or, with `auto`, another model) of the given family and sizes, matched to
    `tokenizer`; the family's base model's position limit."""
    # vocab_size null (model/scratch=base): the family's own embedding table, however few tokens the texts gave
    vocabulary = len(tokenizer) if scratch.vocab_size else max(len(tokenizer), _base(family).vocab_size)
    sizes = dict(vocab_size=vocabulary, pad_token_id=tokenizer.pad_token_id, **scratch_shape(family, scratch))
    if str(family) == "bert":
        config = BertConfig(**sizes)
    else:
        # ModernBERT's default special ids (50281-50283) lie outside a small vocabulary: take the tokenizer's
        config = ModernBertConfig(bos_token_id=tokenizer.cls_token_id, cls_token_id=tokenizer.cls_token_id,
                                  eos_token_id=tokenizer.sep_token_id, sep_token_id=tokenizer.sep_token_id, **sizes)
    config.update(config_changes)
    try:
        return auto.from_config(config, attn_implementation=attention)
    except (ImportError, ValueError) as err:
        raise ModelError(f"model.attn_implementation={attention} does not work here ({summary(err)}); "
                         "use model.attn_implementation=sdpa") from err


def _unreachable(pretrained: str, err: Exception) -> BertcmpError:
    if Path(pretrained).expanduser().is_dir():
        return ModelError(f"model.pretrained={pretrained!r} is a directory but not a saved model "
                          f"({summary(err)}); it needs config.json, "
                          "the weights and tokenizer files as save_pretrained writes them")
    if hub.is_offline() and hub.is_hub_id(pretrained):
        return hub.not_cached("model.pretrained", pretrained)
    return ModelError(f"model.pretrained={pretrained!r} is neither a local directory nor reachable on the "
                      "Hugging Face Hub; download it and pass model.pretrained=/local/dir, "
                      "or try the offline preset experiment=smoke")


def build_classifier(cfg: DictConfig, tokenizer: PreTrainedTokenizerFast, classes: Sequence[str],
                     device: torch.device = torch.device("cpu"), dtype: Optional[torch.dtype] = None) -> nn.Module:
    """The model the config asks for, with one output per class: pretrained when `pretrained` is set, else from
    scratch; with the shared head or the family's native one. Either maps (input_ids, attention_mask[,
    token_type_ids]) to class logits and can `save` itself. `dtype` is the training's autocast (None: fp32); the
    parameters are fp32 whatever it is."""
    attention = resolve_attention(str(cfg.attn_implementation), device, dtype)
    build = partial(load_encoder, cfg.pretrained, attention) if cfg.pretrained \
        else partial(scratch_encoder, cfg.name, cfg.scratch, tokenizer, attention)
    if cfg.head == "native":
        model = NativeClassifier(build(auto=AutoModelForSequenceClassification, **_native_head(cfg, classes)))
        vocabulary = model.config.vocab_size
    else:
        encoder = build()
        vocabulary = encoder.config.vocab_size
    if vocabulary < len(tokenizer):
        raise ModelError(f"model.pretrained={cfg.pretrained!r}: its tokenizer has {len(tokenizer)} tokens but the "
                         f"encoder only {vocabulary} embeddings")
    if tokenizer.pad_token_id is None:
        raise ModelError(f"model.pretrained={cfg.pretrained!r}: its tokenizer has no padding token; bertcmp batches "
                         "texts of different lengths and needs one (is it an encoder?)")
    if cfg.head == "native":
        return model
    return SequenceClassifier(encoder, num_labels=len(classes), pooling=str(cfg.pooling), dropout=cfg.dropout,
                              cls_last=cls_is_last(tokenizer))


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Recompute each layer's activations in the backward pass instead of keeping them (transformers' own
    activation checkpointing, non-reentrant, with dropout's random state replayed: the same numbers)."""
    encoder = model.model if isinstance(model, NativeClassifier) else model.encoder
    if not getattr(encoder, "supports_gradient_checkpointing", False):
        raise ModelError(f"trainer.gradient_checkpointing: {type(encoder).__name__} does not support it; "
                         "set trainer.gradient_checkpointing=false")
    if hasattr(encoder, "activation_checkpointing_enable"):  # its name since transformers 5.x
        encoder.activation_checkpointing_enable()  # non-reentrant by default
    else:
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def cls_is_last(tokenizer: PreTrainedTokenizerFast) -> bool:
    """Whether the tokenizer puts its [CLS] token last (XLNet) rather than first (BERT, RoBERTa, ...)."""
    ids = tokenizer("a")["input_ids"]
    return tokenizer.cls_token_id is not None and ids[-1] == tokenizer.cls_token_id and ids[0] != tokenizer.cls_token_id


def _native_head(cfg: DictConfig, classes: Sequence[str]) -> dict:
    """The config of the family's own head, one output per class, the classes named as transformers does."""
    labels = {"num_labels": len(classes), "id2label": dict(enumerate(classes)),
              "label2id": {name: i for i, name in enumerate(classes)}}
    if _family_of(cfg) == "modernbert":
        return {**labels, "classifier_pooling": str(cfg.pooling)}
    if cfg.pooling != "cls":
        raise ConfigError(f"model.pooling={cfg.pooling} with model.head=native: this family's own head reads the "
                          "[CLS] token (only ModernBERT's can average); use model.pooling=cls, or model.head=shared "
                          "for mean pooling")
    return labels


def _family_of(cfg: DictConfig) -> str:
    return _pretrained_config(cfg.pretrained).model_type if cfg.pretrained else str(cfg.name)


def load_trained_tokenizer(directory: Path) -> PreTrainedTokenizerFast:
    """The tokenizer a run saved beside its weights."""
    try:
        return AutoTokenizer.from_pretrained(str(directory))
    except Exception as err:  # transformers raises many types for files it cannot read
        raise ModelError(f"{directory}: its tokenizer files could not be read ({summary(err)}); the checkpoint is "
                         "damaged or incomplete: train the run again, or restore the directory") from err


def load_trained(directory: Path, head: str, pooling: str, num_labels: int,
                 tokenizer: PreTrainedTokenizerFast) -> nn.Module:
    """A classifier as a run's checkpoint/ holds it (what `save` wrote, with `tokenizer`, the checkpoint's own), in
    eval mode on the CPU. Weights that cannot be read, or that give another number of classes than `num_labels`
    (from the checkpoint's bertcmp.json), are one line naming the directory."""
    try:
        config = AutoConfig.from_pretrained(directory)
        if head == "native":
            outputs = config.num_labels
            model: nn.Module = NativeClassifier(AutoModelForSequenceClassification.from_pretrained(
                directory, dtype=torch.float32))
        else:
            from safetensors.torch import load_file

            weights = load_file(str(Path(directory) / "model.safetensors"))
            outputs = weights["head.weight"].shape[0] if "head.weight" in weights else num_labels
            if outputs == num_labels:
                encoder = AutoModel.from_config(config, attn_implementation="sdpa")
                model = SequenceClassifier(encoder, num_labels=num_labels, pooling=pooling,
                                           cls_last=cls_is_last(tokenizer))
                model.load_state_dict(weights)
    except Exception as err:  # a truncated or missing file: safetensors, transformers and torch each raise their own
        raise ModelError(f"{directory}: its weights could not be loaded ({summary(err)}); the checkpoint is damaged "
                         "or incomplete: train the run again, or restore the directory") from err
    if outputs != num_labels:
        raise ModelError(f"{directory}: bertcmp.json names {num_labels} classes but the weights give {outputs}; the "
                         "checkpoint's files come from different runs: train the run again")
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
