"""The config schema: dataclasses registered in Hydra's ConfigStore.

The YAML files under conf/ hold the values a user reads and edits; these dataclasses give every key its
type, so a misspelt key or a wrong type fails while Hydra composes the config, before any model loads.
Range checks that a type cannot express live in `validate`, which the task function calls first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from bertcmp.errors import ConfigError


class ModelName(str, Enum):
    bert = "bert"
    modernbert = "modernbert"


class Pooling(str, Enum):
    cls = "cls"
    mean = "mean"


class Split(str, Enum):
    pooled = "pooled"
    official = "official"


class Padding(str, Enum):
    max_length = "max_length"
    dynamic = "dynamic"


class Attention(str, Enum):
    auto = "auto"
    sdpa = "sdpa"
    flash_attention_2 = "flash_attention_2"
    eager = "eager"


class Optimizer(str, Enum):
    adam = "adam"
    adamw = "adamw"


class Scheduler(str, Enum):
    constant = "constant"
    linear = "linear"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class SaveCheckpoint(str, Enum):
    best = "best"
    none = "none"


class WandbMode(str, Enum):
    auto = "auto"
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class ScratchConfig:
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 128
    vocab_size: int = 2000


@dataclass
class ModelConfig:
    name: ModelName = MISSING
    pretrained: Optional[str] = None
    pooling: Pooling = Pooling.cls
    dropout: float = 0.1
    attn_implementation: Attention = Attention.auto
    scratch: ScratchConfig = field(default_factory=ScratchConfig)


@dataclass
class DataConfig:
    name: str = "imdb"
    source: Any = "stanfordnlp/imdb"
    text_column: str = "text"
    label_column: str = "label"
    split: Split = Split.pooled
    split_seed: int = 42
    valid_size: float = 0.05
    test_size: float = 0.05
    train_size: Optional[int] = None
    dedup: bool = False
    num_examples: int = 4000
    max_length: int = 128
    padding: Padding = Padding.max_length
    pool_batches: int = 50
    batch_size: int = 32
    eval_batch_size: Optional[int] = None
    num_workers: int = 0


@dataclass
class TrainerConfig:
    epochs: int = 5
    lr: float = 5e-5
    optimizer: Optimizer = Optimizer.adam
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    scheduler: Scheduler = Scheduler.constant
    warmup_ratio: float = 0.0
    precision: Precision = Precision.auto
    compile: bool = False
    device: str = "auto"
    save_checkpoint: SaveCheckpoint = SaveCheckpoint.best
    max_grad_norm: Optional[float] = None


@dataclass
class LoggerConfig:
    mode: WandbMode = WandbMode.auto
    project: str = "bertcmp"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)


@dataclass
class Config:
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    seed: int = 42
    cache_dir: str = MISSING


def register_configs() -> None:
    """Make the schema available to conf/config.yaml's defaults list as `bertcmp_schema`, and give
    hydra/launcher=joblib a sensible n_jobs (see bertcmp.sweep.default_n_jobs)."""
    cs = ConfigStore.instance()
    cs.store(name="bertcmp_schema", node=Config)
    # The plugin's own preset runs one job per CPU core (n_jobs=-1): 64 trainings on an 8-GPU machine.
    # Hydra's plugin scan (once per process) stores that preset; scan first, so ours replaces it.
    from hydra.core.plugins import Plugins
    from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf

    Plugins.instance()

    cs.store(group="hydra/launcher", name="joblib", node=JobLibLauncherConf(n_jobs="${bertcmp.n_jobs:}"),
             provider="bertcmp")


def _slug(text: str) -> str:
    # override values may hold "/" (paths, hub ids): keep each job in one flat, short directory
    return re.sub(r"[/\\]+", "-", text).strip("-")[:120]


if not OmegaConf.has_resolver("bertcmp.slug"):
    OmegaConf.register_new_resolver("bertcmp.slug", _slug)

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: DictConfig) -> None:
    """Range checks the schema's types cannot express; each failure names the key and what would be right."""
    t, d, m = cfg.trainer, cfg.data, cfg.model
    _require(t.lr > 0, f"trainer.lr={t.lr} must be > 0 (the reference recipe uses trainer.lr=5e-5)")
    _require(t.epochs >= 1, f"trainer.epochs={t.epochs} must be >= 1")
    _require(len(t.betas) == 2 and all(0 <= b < 1 for b in t.betas),
             f"trainer.betas={list(t.betas)} must be two numbers in [0, 1), e.g. [0.9,0.999]")
    _require(t.eps > 0, f"trainer.eps={t.eps} must be > 0")
    _require(t.weight_decay >= 0, f"trainer.weight_decay={t.weight_decay} must be >= 0")
    _require(0 <= t.warmup_ratio < 1, f"trainer.warmup_ratio={t.warmup_ratio} must be in [0, 1)")
    _require(t.max_grad_norm is None or t.max_grad_norm > 0,
             f"trainer.max_grad_norm={t.max_grad_norm} must be > 0, or null for no clipping")
    _require(bool(_DEVICE.match(t.device)),
             f"trainer.device={t.device!r} is not a device: use auto, cpu, cuda or cuda:N")
    _require(d.batch_size >= 1, f"data.batch_size={d.batch_size} must be >= 1")
    _require(d.eval_batch_size is None or d.eval_batch_size >= 1,
             f"data.eval_batch_size={d.eval_batch_size} must be >= 1, or null to use data.batch_size")
    _require(d.pool_batches >= 1, f"data.pool_batches={d.pool_batches} must be >= 1")
    _require(d.num_workers >= 0, f"data.num_workers={d.num_workers} must be >= 0")
    _require(d.max_length >= 8, f"data.max_length={d.max_length} must be >= 8 tokens")
    _require(d.train_size is None or d.train_size >= 1,
             f"data.train_size={d.train_size} must be >= 1, or null for all the rest")
    _require(d.name != "synthetic" or d.source is None,
             f"data.source={d.source} is not read by data=synthetic (generated reviews); "
             "to train on it use data=imdb data.source=...")
    _require(d.num_examples >= 10, f"data.num_examples={d.num_examples} must be >= 10")
    for key in ("valid_size", "test_size"):
        size = d[key]
        _require(size > 0 and (size < 1 or float(size).is_integer()),
                 f"data.{key}={size} must be a fraction in (0, 1) or a whole number of examples")
    if d.valid_size < 1 and d.test_size < 1:
        _require(d.valid_size + d.test_size < 1,
                 f"data.valid_size + data.test_size = {d.valid_size + d.test_size:g} must be < 1 "
                 "(fractions of the data)")
    _require((d.valid_size < 1) == (d.test_size < 1),
             "data.valid_size and data.test_size must both be fractions or both be counts, "
             f"got {d.valid_size:g} and {d.test_size:g}")
    _require(0 <= m.dropout < 1, f"model.dropout={m.dropout} must be in [0, 1)")
    s = m.scratch
    for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
        _require(s[key] >= 1, f"model.scratch.{key}={s[key]} must be >= 1")
    _require(s.vocab_size >= 100, f"model.scratch.vocab_size={s.vocab_size} must be >= 100")
    _require(s.hidden_size % s.num_heads == 0,
             f"model.scratch.hidden_size={s.hidden_size} must be divisible by "
             f"model.scratch.num_heads={s.num_heads}")
    if m.name == ModelName.modernbert:
        _require((s.hidden_size // s.num_heads) % 2 == 0,
                 f"model.scratch.hidden_size / num_heads = {s.hidden_size // s.num_heads} must be even "
                 "for ModernBERT (rotary embeddings)")
