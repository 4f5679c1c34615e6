"""The config schema: dataclasses registered in Hydra's ConfigStore.

These dataclasses give every key its type and its default; a YAML file under conf/ holds only what its
option changes (conf/model/modernbert.yaml: the name and the weights). A misspelt key or a wrong type fails
while Hydra composes the config, before any model loads. Range checks that a type cannot express live in
`validate`, which the task function calls first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from bertcmp.errors import ConfigError


class Choice(str, Enum):
    """A config value from a fixed set: equal to its string, and printed as it (str(Pooling.cls) == "cls")."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class ModelName(Choice):
    bert = "bert"
    modernbert = "modernbert"
    auto = "auto"  # any encoder AutoModel loads (model.pretrained); the run is named by its model_type


class Pooling(Choice):
    cls = "cls"    # the [CLS] vector (the reference)
    mean = "mean"  # the mean of the real tokens


class Head(Choice):
    shared = "shared"  # the same dropout + linear layer on every encoder's pooled vector: compares encoders
    native = "native"  # each family's own AutoModelForSequenceClassification head, its pretrained parts included


class Split(Choice):
    pooled = "pooled"      # every labelled split pooled, then split (the reference)
    official = "official"  # the source's own test split; its validation split, or valid carved from train


class Synthetic(Choice):
    reviews = "reviews"  # movie reviews, two classes (data=synthetic)
    topics = "topics"    # news items, four classes with string labels (data=topics)


class OnOOM(Choice):
    halve = "halve"  # out of memory: halve the micro-batch, double the accumulation (the same steps), go on
    fail = "fail"


class OnNonFinite(Choice):
    retry_fp32 = "retry_fp32"  # a NaN loss under bf16 / fp16: back to the last validation, on in fp32, once
    fail = "fail"


class Metric(Choice):
    accuracy = "accuracy"
    f1 = "f1"              # the positive class's F1: two-class tasks (MRPC, QQP)
    macro_f1 = "macro_f1"
    mcc = "mcc"            # Matthews correlation (CoLA)


class Padding(Choice):
    max_length = "max_length"  # every batch padded to data.max_length (the reference)
    dynamic = "dynamic"        # each batch to its longest item, training batches grouped by length


class Truncation(Choice):
    head = "head"            # the first max_length tokens (the reference)
    tail = "tail"            # the last ones
    head_tail = "head_tail"  # the first data.head_tokens, the rest from the end (Sun et al. 2019: best on IMDB)


class Attention(Choice):
    auto = "auto"  # sdpa (bertcmp.model.resolve_attention says why)
    sdpa = "sdpa"
    flash_attention_2 = "flash_attention_2"
    eager = "eager"


class Optimizer(Choice):
    adam = "adam"                        # weight_decay as an L2 term in the gradient (torch.optim.Adam)
    adamw = "adamw"                      # p *= 1 - lr_t * weight_decay per step (torch.optim.AdamW)
    decoupled_adamw = "decoupled_adamw"  # p *= 1 - weight_decay * lr_t / lr per step (Composer's DecoupledAdamW)


class Scheduler(Choice):
    constant = "constant"
    linear = "linear"  # decays to 0 at the last step


class Precision(Choice):
    auto = "auto"  # bf16 on a GPU that supports it, else fp32
    fp32 = "fp32"
    bf16 = "bf16"  # autocast; also on CPUs
    fp16 = "fp16"  # CUDA only, with a gradient scaler


class SaveCheckpoint(Choice):
    best = "best"  # the best epoch's weights, config and tokenizer in checkpoint/
    none = "none"


class WandbMode(Choice):
    auto = "auto"  # WANDB_MODE if set, else online with a W&B key (WANDB_API_KEY or `wandb login`), else offline
    online = "online"
    offline = "offline"
    disabled = "disabled"


# The dataclasses below hold every default (docs/configuration.md explains each key); a YAML file in conf/
# lists only where its option differs from them.


@dataclass
class ScratchConfig:
    """Sizes of an encoder built from scratch (model.pretrained=null), with a tokenizer trained on the data. A null
    size is the family's base model's (bert-base-uncased, ModernBERT-base): model/scratch=base sets them all null."""
    hidden_size: Optional[int] = 64
    num_layers: Optional[int] = 2
    num_heads: Optional[int] = 2          # ModernBERT: hidden_size / num_heads must be even (rotary embeddings)
    intermediate_size: Optional[int] = 128
    vocab_size: Optional[int] = 2000      # the tokenizer's; null: as many as the family's real vocabulary


@dataclass
class ModelConfig:
    name: ModelName = MISSING              # the encoder family, set by the model group
    pretrained: Optional[str] = None       # a Hub id or a local directory; null = from scratch (scratch.*)
    head: Head = Head.shared
    pooling: Pooling = Pooling.cls
    dropout: float = 0.1                   # the shared head's dropout (a native head has its family's own)
    attn_implementation: Attention = Attention.auto
    scratch: ScratchConfig = field(default_factory=ScratchConfig)


@dataclass
class DataConfig:
    name: str = MISSING                    # what the data is called in metrics.json and the comparison
    source: Any = None                     # Hub id | Hub-layout dir | aclImdb folder | csv/jsonl/parquet file(s)
    config: Optional[str] = None           # a Hub set's configuration, where it has several (GLUE: sst2, mnli, ...)
    synthetic: Optional[Synthetic] = None  # generated data instead of `source` (data=synthetic, data=topics)
    num_examples: int = 4000               # how many items to generate (synthetic only)
    text_column: str = "text"
    text_pair_column: Optional[str] = None  # the second text of pair tasks (NLI, paraphrase); null = single texts
    label_column: str = "label"            # class names or whole numbers; the classes come from the data
    metric: Metric = Metric.accuracy       # the task's usual metric: picks the best validation, and the comparison's
    split: Split = Split.pooled
    test_split: str = "test"               # official: the source's split that is the test set (GLUE: validation)
    split_seed: int = 42                   # apart from `seed`, so a seed sweep scores the same test items
    valid_size: float = 0.05               # a fraction (of all data when pooled, of train when official) or a count
    test_size: float = 0.05                # pooled only
    train_size: Optional[int] = None       # a cap on training examples; null = all the rest
    dedup: bool = False                    # drop repeated texts before splitting
    max_length: int = 128                  # tokens per text, at most what the model reads (else lowered to it)
    truncation: Truncation = Truncation.head  # which tokens a longer text keeps
    head_tokens: Optional[int] = None      # head_tail: tokens kept from the start; null = a quarter of max_length
    padding: Padding = Padding.max_length
    pool_batches: int = 50                 # dynamic padding: batches per length-sorted pool
    batch_size: int = 32
    eval_batch_size: Optional[int] = None  # null = batch_size
    num_workers: int = 0                   # DataLoader worker processes


CHECKPOINTING_FROM = 2048  # trainer.gradient_checkpointing=auto: tokens per text from which it is on


@dataclass
class TrainerConfig:
    epochs: int = 5
    lr: float = 5e-5
    optimizer: Optimizer = Optimizer.adam
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    scheduler: Scheduler = Scheduler.constant
    warmup_ratio: float = 0.0              # the share of all steps spent warming the learning rate up from 0
    max_grad_norm: Optional[float] = None  # gradient clipping; null = none
    grad_accum_steps: int = 1              # micro-batches per optimizer step: effective batch = data.batch_size x this
    eval_every: Optional[int] = None       # validate every this many optimizer steps; null = after every epoch
    log_every: Optional[int] = None        # optimizer steps between read-backs of the loss; null = 1 on CPU, 50 on GPU
    patience: Optional[int] = None         # stop after this many validations without a better one; null = never
    precision: Precision = Precision.auto
    compile: bool = False                  # torch.compile the model once (30 s or more up front)
    # activations recomputed in the backward pass: memory for time (same numbers); auto: on from 2,048 tokens
    gradient_checkpointing: Any = False    # true | false | auto
    on_oom: OnOOM = OnOOM.halve            # a training step out of GPU memory: heal it (halve) or fail
    on_nonfinite: OnNonFinite = OnNonFinite.retry_fp32  # a NaN / infinite loss under reduced precision
    device: str = "auto"                   # auto (a GPU leased for the job, else CPU) | cpu | cuda | cuda:N
    jobs_per_gpu: int = 1                  # auto: jobs that may share one GPU (small models); joblib runs GPUs x this
    save_checkpoint: SaveCheckpoint = SaveCheckpoint.best


@dataclass
class LoggerConfig:
    mode: WandbMode = WandbMode.auto
    project: str = "bertcmp"
    entity: Optional[str] = None           # your W&B user or team; null = your default entity
    group: Optional[str] = None            # null = the sweep (<date>_<time>); single runs are not grouped
    tags: list[str] = field(default_factory=list)


@dataclass
class Config:
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    seed: int = 42                         # weights init, dropout and batch order; data.split_seed fixes the split
    # tokenized data, shared by every run with the same texts, tokenizer and max_length
    cache_dir: str = "${oc.env:BERTCMP_CACHE_DIR,'~/.cache/bertcmp'}"


def register_configs() -> None:
    """Make the schema available to conf/config.yaml's defaults list as `bertcmp_schema`, register bertcmp's
    resolvers, and give hydra/launcher=joblib a sensible n_jobs (see bertcmp.sweep.default_n_jobs)."""
    register_resolvers()
    cs = ConfigStore.instance()
    cs.store(name="bertcmp_schema", node=Config)
    # The plugin's own preset runs one job per CPU core (n_jobs=-1): 64 trainings on an 8-GPU machine.
    # Hydra's plugin scan (once per process) stores that preset; scan first, so ours replaces it.
    from hydra.core.plugins import Plugins
    from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf

    Plugins.instance()

    cs.store(group="hydra/launcher", name="joblib",
             node=JobLibLauncherConf(n_jobs="${bertcmp.n_jobs:${trainer.jobs_per_gpu}}"), provider="bertcmp")


def register_resolvers() -> None:
    """`${bertcmp.slug:...}` (the sweep's job directories) and `${bertcmp.n_jobs:}` (the joblib preset)."""
    from bertcmp.sweep import default_n_jobs

    if not OmegaConf.has_resolver("bertcmp.slug"):
        OmegaConf.register_new_resolver("bertcmp.slug", _slug)
    if not OmegaConf.has_resolver("bertcmp.n_jobs"):
        OmegaConf.register_new_resolver("bertcmp.n_jobs", default_n_jobs, use_cache=True)


def _slug(text: str) -> str:
    # override values may hold "/" (paths, hub ids): keep each job in one flat, short directory
    return re.sub(r"[/\\]+", "-", text).strip("-")[:120]

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: DictConfig) -> None:
    """Range checks the schema's types cannot express; each failure names the key and what would be right."""
    t, d, m = cfg.trainer, cfg.data, cfg.model
    _require(t.lr > 0, f"trainer.lr={t.lr} must be > 0 (the reference recipe uses trainer.lr=5e-5)")
    _require(t.epochs >= 1, f"trainer.epochs={t.epochs} must be >= 1")
    _require(t.eval_every is None or t.eval_every >= 1,
             f"trainer.eval_every={t.eval_every} must be >= 1 (optimizer steps between validations), "
             "or null to validate after every epoch")
    _require(t.log_every is None or t.log_every >= 1,
             f"trainer.log_every={t.log_every} must be >= 1 (optimizer steps between read-backs of the loss), "
             "or null for the device's default")
    _require(t.patience is None or t.patience >= 1,
             f"trainer.patience={t.patience} must be >= 1 (validations without improvement before stopping), "
             "or null never to stop early")
    _require(t.grad_accum_steps >= 1,
             f"trainer.grad_accum_steps={t.grad_accum_steps} must be >= 1 (1 = a step per batch, no accumulation)")
    _require(len(t.betas) == 2 and all(0 <= b < 1 for b in t.betas),
             f"trainer.betas={list(t.betas)} must be two numbers in [0, 1), e.g. [0.9,0.999]")
    _require(t.eps > 0, f"trainer.eps={t.eps} must be > 0")
    _require(t.weight_decay >= 0, f"trainer.weight_decay={t.weight_decay} must be >= 0")
    _require(0 <= t.warmup_ratio < 1, f"trainer.warmup_ratio={t.warmup_ratio} must be in [0, 1)")
    _require(t.max_grad_norm is None or t.max_grad_norm > 0,
             f"trainer.max_grad_norm={t.max_grad_norm} must be > 0, or null for no clipping")
    _require(isinstance(t.gradient_checkpointing, bool) or t.gradient_checkpointing == "auto",
             f"trainer.gradient_checkpointing={t.gradient_checkpointing!r} must be true, false or auto (on from "
             f"{CHECKPOINTING_FROM:,} tokens)")
    _require(t.jobs_per_gpu >= 1, f"trainer.jobs_per_gpu={t.jobs_per_gpu} must be >= 1 (jobs sharing one GPU)")
    _require(bool(_DEVICE.match(t.device)),
             f"trainer.device={t.device!r} is not a device: use auto, cpu, cuda or cuda:N")
    _require(d.batch_size >= 1, f"data.batch_size={d.batch_size} must be >= 1")
    _require(d.eval_batch_size is None or d.eval_batch_size >= 1,
             f"data.eval_batch_size={d.eval_batch_size} must be >= 1, or null to use data.batch_size")
    _require(d.pool_batches >= 1, f"data.pool_batches={d.pool_batches} must be >= 1")
    _require(d.num_workers >= 0, f"data.num_workers={d.num_workers} must be >= 0")
    _require(d.max_length >= 8, f"data.max_length={d.max_length} must be >= 8 tokens")
    _require(d.head_tokens is None or d.head_tokens >= 1,
             f"data.head_tokens={d.head_tokens} must be >= 1 (tokens kept from the start with "
             "data.truncation=head_tail), or null for a quarter of the tokens the model reads")
    _require(d.test_split not in ("", "train"),
             f"data.test_split={d.test_split!r} must name the source's split that data.split=official scores on "
             "(test, validation, validation_matched, ...), not the training split")
    _require(d.train_size is None or d.train_size >= 1,
             f"data.train_size={d.train_size} must be >= 1, or null for all the rest")
    _require(not d.synthetic or d.source is None,
             f"data.source={d.source} is not read by data=synthetic (generated reviews); "
             "to train on it use data=imdb data.source=...")
    _require(not d.synthetic or d.num_examples >= 10, f"data.num_examples={d.num_examples} must be >= 10")
    _require(not d.synthetic or d.text_pair_column is None,
             f"data.text_pair_column={d.text_pair_column} is not read by generated data (single texts); "
             "pair tasks read data.source")
    _require(d.text_pair_column is None or d.truncation == Truncation.head,
             f"data.truncation={d.truncation} works on single texts; pairs (data.text_pair_column) are cut from "
             "the longer text first: use data.truncation=head")
    # data.split=official takes the source's own test split: data.test_size is not read, so not checked
    for key in ("valid_size", "test_size") if d.split == "pooled" else ("valid_size",):
        size = d[key]
        _require(size > 0 and (size < 1 or float(size).is_integer()),
                 f"data.{key}={size} must be a fraction in (0, 1) or a whole number of examples")
    if d.split == "pooled":
        if d.valid_size < 1 and d.test_size < 1:
            _require(d.valid_size + d.test_size < 1,
                     f"data.valid_size + data.test_size = {d.valid_size + d.test_size:g} must be < 1 "
                     "(fractions of the data)")
        _require((d.valid_size < 1) == (d.test_size < 1),
                 "data.valid_size and data.test_size must both be fractions or both be counts, "
                 f"got {d.valid_size:g} and {d.test_size:g}")
    _require(0 <= m.dropout < 1, f"model.dropout={m.dropout} must be in [0, 1)")
    if m.name == ModelName.auto:
        _require(not OmegaConf.is_missing(m, "pretrained") and m.pretrained is not None,
                 "model=auto needs model.pretrained=<a Hub id or a local directory> (any encoder AutoModel loads); "
                 "to train from scratch use model=bert or model=modernbert")
    if m.pretrained is not None:
        return
    s = m.scratch  # how the sizes fit together is checked where nulls become the family's: model.scratch_shape
    for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
        _require(s[key] is None or s[key] >= 1,
                 f"model.scratch.{key}={s[key]} must be >= 1, or null for the family's base model's")
    _require(s.vocab_size is None or s.vocab_size >= 100,
             f"model.scratch.vocab_size={s.vocab_size} must be >= 100, or null for the family's own vocabulary size")
