"""The training loop: any model that maps a batch's inputs (input_ids, attention_mask and, for pairs,
token_type_ids) to class logits, any batches of those and `labels`. It knows neither the data set nor the
encoder. A batch without padding reaches the model without its attention_mask (None: every token is real).

    progress = fit(model, train_loader, valid_loader, cfg.trainer, device, dtype)

trains for cfg.epochs, evaluates on the validation batches after every epoch, and hands back the history
and the weights of the epoch with the best validation accuracy.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from bertcmp.errors import ConfigError, TrainingError
from bertcmp import metrics

log = logging.getLogger(__name__)

StepHook = Callable[[int, float, float], None]  # (global step, train loss, learning rate)


@dataclass
class Evaluation:
    loss: float
    labels: np.ndarray = field(repr=False)  # class ids
    preds: np.ndarray = field(repr=False)
    probs: np.ndarray = field(repr=False)   # (items, classes)
    seconds: float = 0.0       # the whole pass: batches, forward and read-back, without gradients
    tokens: int = 0            # real tokens, padding excluded

    @property
    def accuracy(self) -> float:
        return float(metrics.accuracy(self.labels, self.preds))

    def scores(self, classes: Optional[list[str]] = None) -> dict:
        """The loss and every score of metrics.scores, the classes named by `classes` (default: their ids)."""
        names = classes or [str(i) for i in range(self.probs.shape[1])]
        scores = metrics.scores(self.labels, self.preds, names)
        return {"accuracy": scores.pop("accuracy"), "loss": self.loss, **scores}

    def speed(self) -> dict[str, float]:
        """Inference throughput of this pass."""
        return {"examples_per_s": len(self.labels) / self.seconds, "tokens_per_s": self.tokens / self.seconds}


@dataclass
class ValidationRecord:
    """One validation: a line of history.jsonl. The train_* and counting fields cover the steps since the
    previous validation."""
    epoch: float  # epochs trained so far: whole at the end of an epoch, e.g. 1.5 half-way through the second
    step: int     # optimizer steps taken so far, over all epochs
    train_loss: float
    train_accuracy: float
    valid_loss: float
    valid_accuracy: float
    valid_f1: Optional[float]  # the positive class's, for two classes; None for more
    valid_macro_f1: float
    valid_mcc: float
    lr: float
    seconds: float
    train_seconds: float
    examples: int
    tokens: int
    padded_tokens: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Progress:
    """Where training stands at its latest validation; what `fit` returns."""
    history: list[ValidationRecord] = field(default_factory=list)
    step: int = 0              # optimizer steps taken so far
    epoch: int = 1             # the epoch being trained (epochs + 1 once all are done)
    batches_done: int = 0      # micro-batches of that epoch already trained on
    best_index: int = -1       # the validation with the best score (the earliest on ties), in history
    best_score: float = -math.inf  # that validation's score on the selection metric (fit's select_by)
    best_weights: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # a CPU copy
    stopped: Optional[str] = None  # why training ended early ("patience"), or None
    pieces: int = 1            # each loaded batch is trained on in this many micro-batches (doubled on out of memory)
    recovered: list[dict] = field(default_factory=list)  # what healed the run, in order: metrics.json's `recovered`

    @property
    def best_epoch(self) -> float:
        return self.history[self.best_index].epoch

    def copy(self) -> "Progress":
        """A copy that later steps leave alone (the weights are replaced, never changed in place)."""
        return replace(self, history=list(self.history), recovered=list(self.recovered))


@dataclass
class TrainingState:
    """Everything needed to go on exactly where training stopped: `fit` hands one to `save_state` after every
    epoch but the last, and goes on from one given as `resume`."""
    progress: Progress
    model: dict
    optimizer: dict
    scheduler: dict
    scaler: dict
    rng: dict

    def to_dict(self) -> dict:
        """Plain containers and tensors, for torch.save."""
        progress = {f.name: getattr(self.progress, f.name) for f in fields(Progress)}
        progress["history"] = [record.to_dict() for record in self.progress.history]
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "progress": progress}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingState":
        progress = {**data["progress"], "history": [ValidationRecord(**r) for r in data["progress"]["history"]]}
        return cls(**{**data, "progress": Progress(**progress)})


# ---------------------------------------------------------------------------------------------- set-up


def resolve_precision(spec: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype, or None for plain fp32. `auto`: on a GPU, bf16 where the hardware has it (Ampere and
    newer; torch counts a V100's or T4's emulated bf16 unless asked not to, and it is slow) and fp16 with the
    gradient scaler on older ones; on a CPU, fp32."""
    if spec == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if in_hardware(torch.bfloat16, device) else torch.float16
    if spec == "fp16" and device.type != "cuda":
        raise ConfigError("trainer.precision=fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    return PRECISIONS[str(spec)]


def in_hardware(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether the device computes in `dtype` natively: bf16 on Ampere and newer GPUs or on CPUs with AVX-512 BF16
    or AMX; fp16 on any GPU. Elsewhere it is emulated, and slower than fp32."""
    if device.type == "cuda":
        return dtype == torch.float16 or torch.cuda.is_bf16_supported(including_emulation=False)
    return dtype == torch.bfloat16 and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
              "float16": torch.float16}  # the config's names, and the dtype names metrics.json records


def make_optimizer(model: nn.Module, cfg: DictConfig, device: torch.device = torch.device("cpu")) -> torch.optim.Optimizer:
    """Adam, AdamW, or AdamW with Composer's decoupled weight decay (what ModernBERT's fine-tuning recipe uses):
    there every step multiplies each weight by 1 - weight_decay * lr_t / lr, a decay that follows the schedule but
    is not scaled by the learning rate. torch's AdamW multiplies by 1 - lr_t * decay, so decay = weight_decay / lr
    is the same step, and the published values can be typed in as they are."""
    kind = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    decay = cfg.weight_decay / cfg.lr if cfg.optimizer == "decoupled_adamw" else cfg.weight_decay
    # the fused CUDA kernel updates all parameters in one launch; same maths
    return kind(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=decay,
                fused=device.type == "cuda" or None)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: DictConfig, total_steps: int):
    warmup = math.ceil(cfg.warmup_ratio * total_steps)
    name = "linear" if cfg.scheduler == "linear" else ("constant_with_warmup" if warmup else "constant")
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def optimizer_steps(batches: int, cfg: DictConfig) -> int:
    """Optimizer steps in an epoch of `batches` micro-batches: one per trainer.grad_accum_steps of them."""
    return math.ceil(batches / cfg.grad_accum_steps)


def _windows(batches: Iterable[dict], size: int) -> Iterator[list[dict]]:
    """The batches in consecutive lists of `size` (the last may be shorter): one optimizer step each."""
    batches = iter(batches)
    while window := list(itertools.islice(batches, size)):
        yield window


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on the device. A mask of all ones is left out, decided here on the host: given one, transformers
    checks it on the device in every forward (a sync that stalls the GPU), and SDPA takes a slower masked path."""
    unpadded = bool(batch["attention_mask"].numpy().all())
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()
            if k != "item" and not (k == "attention_mask" and unpadded)}


def _progress(loader: DataLoader, desc: str) -> Iterator:
    """The loader's batches, with a live bar on a terminal (in logs, CI and worker processes the per-epoch line is
    enough). The bar gets one iterator of the loader: some tqdm variants call iter() on what they are given, and
    each DataLoader iterator draws from the batch-order generator, which would make the order depend on the bar."""
    return tqdm(iter(loader), total=len(loader), desc=desc, leave=False, dynamic_ncols=True,
                disable=not sys.stderr.isatty())


# ---------------------------------------------------------------------------------------------- loops


def read_back(*tensors: torch.Tensor) -> list[np.ndarray]:
    """The tensors' values on the host, in one transfer: the only place the loops wait for the device. Every
    read makes the host wait until the device has caught up, which leaves the device idle while the host queues
    the next step, so the loops keep their sums on the device and read them here, rarely."""
    flat = torch.cat([t.detach().reshape(-1).double() for t in tensors]).cpu().numpy()  # float64: exact for counts
    sizes = np.cumsum([t.numel() for t in tensors])[:-1]
    return [part.reshape(t.shape) for part, t in zip(np.split(flat, sizes), tensors)]


@torch.no_grad()  # on a generator, torch turns gradients off around each step of it
def _forward(model: nn.Module, loader: DataLoader, device: torch.device, dtype: Optional[torch.dtype],
             desc: str) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]]:
    """Each batch as the loader gave it (on the CPU), on the device, and its fp32 logits; the model in eval mode.
    A batch that runs out of memory is cut in halves, and the pass goes on in pieces of that size."""
    model.eval()
    parts = 1
    for host in _progress(loader, desc):
        while True:
            try:
                done = []
                for piece in split_batch(host, parts):
                    batch = _to(piece, device)
                    with _autocast(device, dtype):
                        done.append((piece, batch, model(**_inputs(batch)).float()))
                break
            except torch.OutOfMemoryError:
                done = []  # the failed pass's tensors go with the exception, before the cache is emptied
            parts = _halved(parts, host, device, "evaluation batch")
            log.warning("out of memory in %s: going on in batches of %d", desc, _rows(host, parts))
        yield from done


def split_batch(batch: dict[str, torch.Tensor], parts: int) -> list[dict[str, torch.Tensor]]:
    """The batch cut into `parts` consecutive pieces of rows (fewer, where it holds fewer rows)."""
    if parts == 1:
        return [batch]
    size = _rows(batch, parts)
    return [{k: v[i:i + size] for k, v in batch.items()} for i in range(0, len(batch["labels"]), size)]


def _rows(batch: dict[str, torch.Tensor], parts: int) -> int:
    return math.ceil(len(batch["labels"]) / parts)


def _halved(parts: int, batch: dict[str, torch.Tensor], device: torch.device, what: str) -> int:
    """Twice the pieces, once the memory the failed attempt held is given back; at one example per piece there
    is nothing left to halve."""
    if _rows(batch, parts) == 1:
        raise TrainingError(f"out of memory with one example of {batch['input_ids'].shape[1]} tokens per {what}: "
                            "lower data.max_length, set trainer.gradient_checkpointing=true, or use a GPU with "
                            "more memory")
    free_memory(device)
    return parts * 2


def free_memory(device: torch.device) -> None:
    """Collect reference cycles (a compiled module keeps one) and give the caching allocator's free blocks back: after
    an out-of-memory error before trying smaller, and at the end of a job."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _in_item_order(items: list[torch.Tensor], *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays put back in the order of the items' positions, when the batches carried them."""
    if not items:
        return arrays
    back = np.argsort(torch.cat(items).numpy(), kind="stable")
    return tuple(a[back] for a in arrays)


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device,
             dtype: Optional[torch.dtype] = None) -> Evaluation:
    """Loss and every item's class probabilities and prediction: in the order of the batches' `item` positions
    when they carry them (length-sorted batches), else in loader order. One read-back per pass."""
    started = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    labels, probs, items, tokens = [], [], [], 0
    for host, batch, logits in _forward(model, loader, device, dtype, "eval"):
        items += [host["item"]] if "item" in host else []
        tokens += int(host["attention_mask"].numpy().sum())
        loss_sum += F.cross_entropy(logits, batch["labels"], reduction="sum").double()
        probs.append(logits.softmax(-1))
        labels.append(host["labels"].numpy())
    total_loss, p = read_back(loss_sum, torch.cat(probs))
    y, p = _in_item_order(items, np.concatenate(labels), p.astype(np.float32))
    seconds = time.perf_counter() - started  # the pass has finished on the device: its results are on the CPU
    return Evaluation(loss=float(total_loss) / len(y), labels=y, preds=p.argmax(-1), probs=p, seconds=seconds,
                      tokens=tokens)


def predict_probs(model: nn.Module, loader: DataLoader, device: torch.device,
                  dtype: Optional[torch.dtype] = None) -> np.ndarray:
    """Every item's class probabilities, (items, classes), in item order: what a trained model says of new texts."""
    items, probs = [], []
    for host, _, logits in _forward(model, loader, device, dtype, "predict"):
        items += [host["item"]] if "item" in host else []
        probs.append(logits.softmax(-1))
    return _in_item_order(items, read_back(torch.cat(probs))[0].astype(np.float32))[0]


def _inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the model reads: input_ids, attention_mask and, for pairs, token_type_ids."""
    return {k: v for k, v in batch.items() if k not in ("labels", "item")}


class NonFiniteLoss(TrainingError):
    """The training loss became NaN or infinite at `step`."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


def fit(model: nn.Module, train_loader: DataLoader, valid_loader: DataLoader, cfg: DictConfig,
        device: torch.device, dtype: Optional[torch.dtype] = None, on_step: Optional[StepHook] = None,
        on_validation: Optional[Callable[[list[ValidationRecord]], None]] = None,
        save_state: Optional[Callable[[TrainingState], None]] = None,
        resume: Optional[TrainingState] = None, select_by: str = "accuracy") -> Progress:
    """Train as `_fit` does; under bf16 or fp16 with trainer.on_nonfinite=retry_fp32, a loss that turns NaN or
    infinite sends training back to the last validation's state (or its start), to go on from there in fp32,
    once; Progress.recovered says so."""
    train = partial(_fit, model, train_loader, valid_loader, cfg, device, on_step=on_step,
                    on_validation=on_validation, select_by=select_by)
    if dtype is None or str(cfg.on_nonfinite) != "retry_fp32":
        return train(dtype, save_state=save_state, resume=resume)
    kept = [resume]  # the state to go back to: the latest validation's, else where this training started

    def keep(state: TrainingState) -> None:
        kept[0] = state
        if save_state:
            save_state(state)

    start = None if resume else (_snapshot(model.state_dict()), {**_rng_states(device),
                                                                 "loader": _loader_state(train_loader)})
    try:
        return train(dtype, save_state=keep, resume=resume)
    except NonFiniteLoss as err:
        back = kept[0]
        record = {"what": "non-finite loss", "step": err.step, "precision": "fp32",
                  "from_step": back.progress.step if back else 0, "was": str(dtype).removeprefix("torch.")}
        log.warning("the training loss became NaN or infinite at step %d under %s: going on in fp32 from step %d "
                    "(trainer.on_nonfinite=retry_fp32)", err.step, record["was"], record["from_step"])
    if back is None:
        model.load_state_dict(start[0])
        _set_rng_states(start[1], train_loader, device)
        return train(None, save_state=save_state, recovered=[record])
    back = replace(back, progress=back.progress.copy())
    back.progress.recovered.append(record)
    return train(None, save_state=save_state, resume=back)


def _fit(model: nn.Module, train_loader: DataLoader, valid_loader: DataLoader, cfg: DictConfig,
         device: torch.device, dtype: Optional[torch.dtype] = None, on_step: Optional[StepHook] = None,
         on_validation: Optional[Callable[[list[ValidationRecord]], None]] = None,
         save_state: Optional[Callable[[TrainingState], None]] = None,
         resume: Optional[TrainingState] = None, select_by: str = "accuracy",
         recovered: Sequence[dict] = ()) -> Progress:
    """Train for cfg.epochs under autocast to `dtype` (None: fp32), validating after every epoch or every
    cfg.eval_every optimizer steps; keep the weights of the best validation by `select_by` (accuracy, f1, macro_f1
    or mcc), and stop early after cfg.patience validations without a better one. After every validation `on_validation` gets the history so
    far (the latest last, earlier ones of a resumed run included).

    After every validation that training goes on from, `save_state` gets the full TrainingState; passing it back
    as `resume` goes on from there (mid-epoch too) and, on the CPU, ends with the same numbers as a run never
    interrupted."""
    model.to(device)
    optimizer = make_optimizer(model, cfg, device)
    scheduler = make_scheduler(optimizer, cfg, total_steps=cfg.epochs * optimizer_steps(len(train_loader), cfg))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    progress = Progress(recovered=list(recovered))
    if resume:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        scheduler.load_state_dict(resume.scheduler)
        scaler.load_state_dict(resume.scaler)
        _set_rng_states(resume.rng, train_loader, device)
        progress = resume.progress.copy()
    if cfg.compile:  # in place: the state dict keeps its keys; compiled once, reused by every epoch
        model.compile(dynamic=None)
    log_every = cfg.log_every or (1 if device.type == "cpu" else 50)  # a read costs the CPU nothing
    heal = str(cfg.on_oom) == "halve"
    since = _Since(device)  # what the next validation record counts: the steps since the previous one
    while progress.epoch <= cfg.epochs and not progress.stopped:
        epoch = progress.epoch
        epoch_start = _loader_state(train_loader)  # the epoch's batch order comes from this state
        model.train()
        batches = iter(_progress(train_loader, f"epoch {epoch}/{cfg.epochs}"))
        for _ in range(progress.batches_done):  # resuming mid-epoch: the batches already trained on
            next(batches)
        for window in _windows(batches, cfg.grad_accum_steps):
            optimizer.zero_grad(set_to_none=True)
            dropout_state = _dropout_rng(device) if heal else None
            while True:
                try:
                    done = _train_window(model, window, progress.pieces, device, dtype, scaler)
                    break
                except torch.OutOfMemoryError:
                    if not heal:
                        raise TrainingError(_oom_message(window, progress, epoch)) from None
                optimizer.zero_grad(set_to_none=True)  # outside `except`: the failed step's tensors are gone
                progress.pieces = _halved(progress.pieces, window[0], device, "micro-batch")
                _set_dropout_rng(dropout_state, device)  # the step again as it would have run at that size
                _record_oom(progress, window, cfg, epoch)
            window_loss, window_examples = done.loss, done.examples
            since.tokens, since.padded = since.tokens + done.tokens, since.padded + done.padded
            since.correct += done.correct
            since.examples += done.examples
            if cfg.max_grad_norm:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            since.lr = scheduler.get_last_lr()[0]
            scheduler.step()
            progress.step += 1
            progress.batches_done += len(window)
            since.loss_sum += window_loss * window_examples
            since.unread.append((progress.step, since.lr, window_loss))
            if progress.step % log_every == 0:
                _read_steps(since, on_step, cfg, epoch)
            if cfg.eval_every and progress.step % cfg.eval_every == 0 and progress.batches_done < len(train_loader):
                epochs_done = round(epoch - 1 + progress.batches_done / len(train_loader), 4)
                _read_steps(since, on_step, cfg, epoch)
                _validate(model, valid_loader, device, dtype, cfg, progress, since, epochs_done, select_by)
                if not progress.stopped:  # mid-epoch: a resume draws this epoch's order again and skips ahead
                    _save(save_state, progress, model, optimizer, scheduler, scaler, epoch_start, device)
                if on_validation:
                    on_validation(progress.history)
                if progress.stopped:
                    break
                since = _Since(device)  # counted from here: saving and reporting are not training
                model.train()
        if progress.stopped:
            break
        progress.epoch, progress.batches_done = epoch + 1, 0
        # at the end of every epoch; with eval_every, where its count falls on the epoch's last step, and at the end
        if cfg.eval_every is None or progress.step % cfg.eval_every == 0 or progress.epoch > cfg.epochs:
            _read_steps(since, on_step, cfg, epoch)
            _validate(model, valid_loader, device, dtype, cfg, progress, since, epoch, select_by)
            if progress.epoch <= cfg.epochs and not progress.stopped:  # the next epoch's order: the current state
                _save(save_state, progress, model, optimizer, scheduler, scaler, _loader_state(train_loader),
                      device)
            if on_validation:
                on_validation(progress.history)
            since = _Since(device)
    return progress


@dataclass
class _Window:
    """What one optimizer step's micro-batches gave: the loss (a device scalar), the correct count, the counts."""
    loss: torch.Tensor
    correct: torch.Tensor
    examples: int
    tokens: int
    padded: int


def _train_window(model: nn.Module, window: list[dict], pieces: int, device: torch.device,
                  dtype: Optional[torch.dtype], scaler: torch.amp.GradScaler) -> _Window:
    """Forward and backward over the window's batches, each in `pieces` micro-batches: the gradients of one
    optimizer step over their union. Each micro-batch's mean loss is weighted by its share of the window's
    examples (a shorter last window by its own size), so any cut gives the same step."""
    examples = sum(len(batch["labels"]) for batch in window)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # read back every log_every steps
    correct = torch.zeros((), dtype=torch.int64, device=device)
    tokens = padded = 0
    for loaded in window:
        for host in split_batch(loaded, pieces):
            tokens += int(host["attention_mask"].numpy().sum())  # still on the CPU: no wait
            padded += host["input_ids"].numel()
            batch = _to(host, device)
            with _autocast(device, dtype):
                logits = model(**_inputs(batch))
            loss = F.cross_entropy(logits.float(), batch["labels"]) * (len(batch["labels"]) / examples)
            scaler.scale(loss).backward()
            loss_sum += loss.detach().double()
            correct += (logits.argmax(-1) == batch["labels"]).sum()
    return _Window(loss_sum, correct, examples, tokens, padded)


def _oom_message(window: list[dict], progress: Progress, epoch: int) -> str:
    batch = window[0]
    return (f"out of memory at epoch {epoch}, step {progress.step + 1}, training micro-batches of "
            f"{_rows(batch, progress.pieces)} examples of {batch['input_ids'].shape[1]} tokens; trainer.on_oom=halve "
            "would halve them and double the accumulation (the same effective batch)")


def _record_oom(progress: Progress, window: list[dict], cfg: DictConfig, epoch: int) -> None:
    micro_batch, accumulation = _rows(window[0], progress.pieces), cfg.grad_accum_steps * progress.pieces
    progress.recovered.append({"what": "out of memory", "epoch": epoch, "step": progress.step + 1,
                               "micro_batch": micro_batch, "grad_accum_steps": accumulation})
    log.warning("out of memory at step %d: micro-batch halved to %d examples, accumulation doubled to %d steps "
                "(the same effective batch; trainer.on_oom=halve)", progress.step + 1, micro_batch, accumulation)


def _dropout_rng(device: torch.device) -> tuple:
    """The generators dropout draws from, before a step that may have to be run again."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_dropout_rng(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


@dataclass
class _Since:
    """Training counted since the previous validation. The loss and the correct count are sums on the device,
    read back only at a validation; each step's loss waits in `unread` until the next read-back."""
    device: torch.device
    started: float = field(default_factory=time.perf_counter)
    loss_sum: torch.Tensor = field(init=False)
    correct: torch.Tensor = field(init=False)
    examples: int = 0
    tokens: int = 0
    padded: int = 0
    lr: float = 0.0
    unread: list[tuple[int, float, torch.Tensor]] = field(default_factory=list)  # (step, lr, loss)

    def __post_init__(self) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.correct = torch.zeros((), dtype=torch.int64, device=self.device)


def _read_steps(since: _Since, on_step: Optional[StepHook], cfg: DictConfig, epoch: int) -> None:
    """Read back the losses of the steps not read yet (one transfer), stop on one that is not finite, and hand
    each to `on_step`."""
    if not since.unread:
        return
    losses = read_back(torch.stack([loss for _, _, loss in since.unread]))[0]
    bad = np.flatnonzero(~np.isfinite(losses))
    if len(bad):
        steps = f"steps {since.unread[0][0]}-{since.unread[-1][0]}" if len(since.unread) > 1 else "that step"
        raise NonFiniteLoss(f"the training loss became {losses[bad[0]]} at epoch {epoch}, step "
                            f"{since.unread[bad[0]][0]} (read back with {steps}); lower trainer.lr "
                            f"(now {cfg.lr:g}) or use trainer.precision=fp32", step=since.unread[bad[0]][0])
    if on_step:
        for (step, lr, _), loss in zip(since.unread, losses):
            on_step(step, float(loss), lr)
    since.unread.clear()


def _validate(model: nn.Module, valid_loader: DataLoader, device: torch.device, dtype: Optional[torch.dtype],
              cfg: DictConfig, progress: Progress, since: _Since, epochs_done: float, select_by: str) -> None:
    """Score the validation set, record it with the training counted `since` the previous one, keep the best
    weights, and decide on early stopping."""
    loss_sum, correct = read_back(since.loss_sum, since.correct)  # also waits for the device to finish training
    train_seconds = time.perf_counter() - since.started
    valid = evaluate(model, valid_loader, device, dtype).scores()
    progress.history.append(ValidationRecord(
        epoch=epochs_done, step=progress.step, train_loss=float(loss_sum) / since.examples,
        train_accuracy=int(correct) / since.examples, valid_loss=valid["loss"], valid_accuracy=valid["accuracy"],
        valid_f1=valid.get("f1"), valid_macro_f1=valid["macro_f1"], valid_mcc=valid["mcc"], lr=since.lr,
        seconds=time.perf_counter() - since.started, train_seconds=train_seconds, examples=since.examples,
        tokens=since.tokens, padded_tokens=since.padded))
    if valid[select_by] > progress.best_score:
        progress.best_index, progress.best_score = len(progress.history) - 1, valid[select_by]
        progress.best_weights = _snapshot(model.state_dict())
    elif cfg.patience is not None and len(progress.history) - 1 - progress.best_index >= cfg.patience:
        progress.stopped = "patience"
        log.info("stopping early: no better validation %s in the last %d validations (trainer.patience)",
                 select_by, cfg.patience)


def _save(save_state: Optional[Callable[[TrainingState], None]], progress: Progress, model: nn.Module,
          optimizer: torch.optim.Optimizer, scheduler, scaler, loader_state, device: torch.device) -> None:
    """Hand `save_state` what it takes to go on from here; `loader_state` draws the current epoch's order."""
    if save_state:
        save_state(TrainingState(progress=progress.copy(), model=_snapshot(model.state_dict()),
                                 optimizer=_snapshot(optimizer.state_dict()), scheduler=scheduler.state_dict(),
                                 scaler=scaler.state_dict(),
                                 rng={**_rng_states(device), "loader": loader_state}))


def _loader_state(loader: DataLoader):
    generator = getattr(loader, "generator", None)  # None also for a plain list of batches
    return generator.get_state() if generator is not None else None


def _snapshot(value):
    """A CPU copy of tensors nested in dicts and lists: optimizer.state_dict() shares the live tensors."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_snapshot(v) for v in value)
    return value


def _rng_states(device: torch.device) -> dict:
    """The generators dropout draws from (torch's, and on a GPU the training GPU's); the batch order's is the
    loader's, saved beside them. A GPU's state is saved as the training GPU's, not by its number: a resumed job may
    lease another."""
    # numpy's state in plain values and a tensor, so that the saved state loads as data (weights_only)
    name, keys, position, has_gauss, gauss = np.random.get_state()
    numpy_state = (str(name), torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss))
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_rng_states(states: dict, loader: DataLoader, device: torch.device) -> None:
    random.setstate(states["python"])
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)
    if states["loader"] is not None and loader.generator is not None:
        loader.generator.set_state(states["loader"])
