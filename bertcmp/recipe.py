"""The recipe: one fine-tuning run as named steps, the one place that wires data, model, training and tracking.

    set_up -> load_data -> build_model -> load_resume -> start_tracking -> train -> score_and_save -> release_memory

`train_and_test` is what the task function (bertcmp.app) calls once it holds the run's directory; torch,
transformers and datasets are imported here, so that `python -m bertcmp --help` and a bad override answer
without them.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import resource
import traceback
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

import datasets
import torch
from datasets import DatasetDict
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerFast, set_seed
from transformers.utils import logging as transformers_logging

from bertcmp import hub, outputs
from bertcmp.config import CHECKPOINTING_FROM, validate
from bertcmp.data import (Encoded, classes, column, hub_source, load_splits, make_loader, shown_texts,
                          tokenize_splits)
from bertcmp.devices import Neighbours, device_name, job_device
from bertcmp.errors import ConfigError, NotCachedError
from bertcmp.model import (build_classifier, count_parameters, describe_encoder, enable_gradient_checkpointing,
                           make_tokenizer)
from bertcmp.sweep import CpuTurns, TakingTurns, cpu_cores, cpu_threads_per_job
from bertcmp.tracking import Choice, Tracker, choose_mode, start_run
from bertcmp.train import (Evaluation, Progress, TrainingState, ValidationRecord, evaluate, fit, free_memory,
                           resolve_precision)

if TYPE_CHECKING:
    from bertcmp.app import Job

log = logging.getLogger("bertcmp")

# What the imports above made lives as long as the process: out of the garbage collector's sight, the full
# collection that ends each job (release_memory) walks only what jobs made: 0.25 s less per job on a CPU.
gc.freeze()


def train_and_test(cfg: DictConfig, job: Job) -> float:
    """Fine-tune on train, pick the best epoch on valid by data.metric, score it once on test; return its valid
    score on that metric."""
    validate(cfg)  # before anything slow, so a bad value costs nothing
    tracking = choose_mode(str(cfg.logger.mode), job.dir)  # and can W&B be reached?
    with hub_access(cfg, job.overrides):  # and the Hub? Without it, from the cache, after one brief probe
        encoder = describe_encoder(cfg.model, cfg.data.max_length)  # and is the pretrained model there?
        job.named_by(encoder.family)
        # a GPU of its own for as long as the job runs (trainer.device=auto), however the job ends
        with job_device(cfg.trainer.device, cfg.trainer.jobs_per_gpu, job.num) as device:
            try:
                metrics = train_on(cfg, job, device, encoder.max_length, tracking)
            except BaseException as err:
                traceback.clear_frames(err.__traceback__)  # the failed steps' locals (the model, its batches) go now
                raise
            finally:
                release_memory(device)  # inside the lease: the next job on this GPU finds it empty
    metric = metrics["metric"]
    log.info("%s: best epoch %g, valid %s %.4f, test %s %.4f (%s)", job.model, metrics["best_epoch"], metric,
             metrics["valid"][metric], metric, metrics["test"][metric], job.dir)
    return metrics["valid"][metric]


def hub_ids(cfg: DictConfig) -> list[str]:
    """The Hub repositories this run loads: its pretrained model, its data set."""
    model = cfg.model.pretrained if cfg.model.pretrained and hub.is_hub_id(cfg.model.pretrained) else None
    return [name for name in (model, hub_source(cfg.data)) if name]


@contextlib.contextmanager
def hub_access(cfg: DictConfig, overrides: Sequence[str]) -> Iterator[None]:
    """The run's Hub models and data: online when the Hub answers, else from the cache (what `python -m
    bertcmp.prepare` fetched) without waiting on each file's retries; what the cache lacks is named with the prepare
    command that fetches all this run needs (its own overrides)."""
    with hub.offline_unless_reachable(hub_ids(cfg)):
        try:
            yield
        except NotCachedError as err:
            raise NotCachedError(err.missing, " ".join([hub.PREPARE, *overrides])) from None


def train_on(cfg: DictConfig, job: Job, device: torch.device, max_length: int, tracking: Choice) -> dict[str, Any]:
    """The recipe's steps on the job's device; what it built is dropped when it returns (or fails)."""
    hardware = set_up(cfg, job, device)
    data = load_data(cfg, hardware, max_length)
    model = build_model(cfg, job.model, data, hardware)
    resume = load_resume(job, cfg.trainer.epochs)
    tracker = start_tracking(cfg, job, tracking, resume)
    neighbours = Neighbours(device)  # the jobs training on this device meanwhile: are its speeds its own?
    try:
        progress = train(cfg, job, model, data, hardware, tracker, resume, neighbours)
        metrics = score_and_save(cfg, job, model, data, hardware, progress, neighbours)
        tracker.summarise({"best_epoch": metrics["best_epoch"],
                           **{f"test/{k}": v for k, v in metrics["test"].items()},
                           "train/examples_per_s": metrics["train"]["examples_per_s"]})
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    finally:
        neighbours.close()
    tracker.finish()
    return metrics


def release_memory(device: torch.device) -> None:
    """Give back what the job held: reference cycles (a compiled module keeps one) collected, and on a GPU the
    caching allocator's blocks returned, so a reused worker does not sit on them and the next job's peak memory
    counts only its own."""
    free_memory(device)


@dataclass
class Hardware:
    """Where this job trains, resolved once: the device, the autocast dtype (None: plain fp32), and on a CPU it
    has all to itself, the turns it takes with other such jobs (bertcmp.sweep.CpuTurns)."""
    device: torch.device
    dtype: Optional[torch.dtype]
    turns: Optional[CpuTurns] = None

    @property
    def precision(self) -> str:
        return "fp32" if self.dtype is None else str(self.dtype).removeprefix("torch.")


def set_up(cfg: DictConfig, job: Job, device: torch.device) -> Hardware:
    """Seed every generator, reset the numeric modes, pick the precision for the job's device, and take this
    job's share of the CPU cores. A job's numbers must not depend on what ran before it in this process: the basic launcher
    runs every job in one process, and joblib reuses its workers."""
    set_seed(cfg.seed)
    # a sweep's screen is bertcmp's lines: no loading / saving / split-generating bars mid-line
    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    # a local copy whose README has no YAML block (../shared/data/imdb) is fine: not a warning on every run
    logging.getLogger("huggingface_hub.repocard").setLevel(logging.ERROR)
    torch.use_deterministic_algorithms(False)
    torch.set_float32_matmul_precision("highest")  # no TF32 left over from an earlier job or library
    torch.backends.cudnn.benchmark = False  # autotuned kernels could differ from run to run
    torch.set_default_dtype(torch.float32)
    if cfg.trainer.compile:
        torch._dynamo.reset()  # no compiled graph or guard of an earlier job's model
    hardware = Hardware(device, resolve_precision(cfg.trainer.precision, device))
    if device.type == "cpu":  # parallel jobs of a sweep share the cores instead of fighting over them
        threads = cpu_threads_per_job(job.parallel_jobs)
        torch.set_num_threads(threads)
        if threads == cpu_cores() and CpuTurns.wanted():  # jobs of other sweeps (or tests) wanting every core
            hardware.turns = CpuTurns()                       # take turns with this one
    return hardware


@dataclass
class Data:
    tokenizer: PreTrainedTokenizerFast
    classes: list[str]              # class id i is classes[i]
    max_length: int                 # data.max_length, or less where the model reads less
    head_tokens: int                # data.truncation=head_tail: tokens kept from the start
    encoded: dict[str, Encoded]     # train / valid / test, tokenized
    loaders: dict[str, DataLoader]  # train / valid / test
    test_texts: list[str]           # in encoded["test"]'s order (pairs: both): their starts go with the predictions


@dataclass
class Tokenized:
    """The run's data read, split and tokenized, before batching: what bertcmp.prepare makes ahead of a sweep."""
    splits: DatasetDict
    classes: list[str]
    tokenizer: PreTrainedTokenizerFast
    head_tokens: int
    encoded: dict[str, Encoded]


def tokenize_data(cfg: DictConfig, max_length: int) -> Tokenized:
    """Read and split the data, get the tokenizer, tokenize once (cached for every later run with the same texts,
    tokenizer, length and truncation)."""
    d = cfg.data
    splits = load_splits(d)
    names = classes(splits)
    if str(d.metric) == "f1" and len(names) != 2:  # before anything slow
        raise ConfigError(f"data.metric=f1 is the positive class's F1 of two-class tasks, and this task has "
                          f"{len(names)} classes; use data.metric=macro_f1")
    tokenizer = make_tokenizer(cfg.model, column(splits["train"], "text"))
    # Sun et al. (2019) kept 128 of BERT's 512 tokens from the start: a quarter of what each model reads
    head_tokens = d.head_tokens or max_length // 4
    encoded = tokenize_splits(splits, tokenizer, max_length, cfg.cache_dir, d.truncation, head_tokens)
    return Tokenized(splits, names, tokenizer, head_tokens, encoded)


def load_data(cfg: DictConfig, hardware: Hardware, max_length: int) -> Data:
    """The run's data tokenized (tokenize_data), in batches."""
    d = cfg.data
    tokenized = tokenize_data(cfg, max_length)
    splits, names, tokenizer, encoded = tokenized.splits, tokenized.classes, tokenized.tokenizer, tokenized.encoded
    loader = partial(make_loader, pad_id=tokenizer.pad_token_id, max_length=max_length, padding=str(d.padding),
                     pool_batches=d.pool_batches, num_workers=d.num_workers,
                     pin_memory=hardware.device.type == "cuda")
    eval_batch = d.eval_batch_size or d.batch_size
    loaders = {"train": loader(encoded["train"], d.batch_size, shuffle=True, seed=cfg.seed),
               "valid": loader(encoded["valid"], eval_batch), "test": loader(encoded["test"], eval_batch)}
    if hardware.turns:
        loaders = {name: TakingTurns(batches, hardware.turns) for name, batches in loaders.items()}
    log.info("data: %s train / %s valid / %s test examples, %d classes (%s)",
             *(len(encoded[s]) for s in ("train", "valid", "test")), len(names), ", ".join(names[:10]))
    return Data(tokenizer, names, max_length, tokenized.head_tokens, encoded, loaders, shown_texts(splits["test"]))


def build_model(cfg: DictConfig, family: str, data: Data, hardware: Hardware) -> nn.Module:
    # re-seeded so the initialisation does not depend on how much randomness the data path used
    set_seed(cfg.seed)
    model = build_classifier(cfg.model, data.tokenizer, data.classes, hardware.device, hardware.dtype)
    checkpointing = gradient_checkpointing(cfg, data)
    if checkpointing:
        enable_gradient_checkpointing(model)
    log.info("model: %s (%s), %.1fM parameters, on %s, %s%s", family, cfg.model.pretrained or "from scratch",
             count_parameters(model) / 1e6, hardware.device, hardware.precision,
             ", gradient checkpointing" if checkpointing else "")
    reset_peak_memory(hardware.device)
    return model


def gradient_checkpointing(cfg: DictConfig, data: Data) -> bool:
    """trainer.gradient_checkpointing, with auto decided by the tokens this model reads."""
    spec = cfg.trainer.gradient_checkpointing
    return data.max_length >= CHECKPOINTING_FROM if spec == "auto" else bool(spec)


@dataclass
class Resume:
    """What resume/state.pt holds: the state after the last finished epoch, and which run it belongs to."""
    computation_key: str
    tracker_id: Optional[str]  # the W&B run that goes on
    training: TrainingState

    def to_dict(self) -> dict:
        return {"computation_key": self.computation_key, "tracker_id": self.tracker_id,
                "training": self.training.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "Resume":
        return cls(data["computation_key"], data["tracker_id"], TrainingState.from_dict(data["training"]))


def load_resume(job: Job, epochs: int) -> Optional[Resume]:
    """The saved state of this run's last finished epoch, if it has one and it was saved with this config."""
    saved = outputs.read_resume_state(job.dir)
    if saved is None:
        return None
    try:
        resume = Resume.from_dict(saved)
    except (KeyError, TypeError):
        log.warning("ignoring %s/%s: it was saved by another version of bertcmp", job.dir, outputs.RESUME_DIR)
        return None
    if resume.computation_key != job.computation_key:
        log.warning("ignoring %s/%s: it was saved with another config", job.dir, outputs.RESUME_DIR)
        return None
    log.info("resuming after epoch %d of %d", len(resume.training.progress.history), epochs)
    return resume


def start_tracking(cfg: DictConfig, job: Job, tracking: Choice, resume: Optional[Resume]) -> Tracker:
    return start_run(cfg.logger, tracking, job.tracked_config(cfg), job.name, job.group, job.dir,
                     run_id=resume.tracker_id if resume else None)


def train(cfg: DictConfig, job: Job, model: nn.Module, data: Data, hardware: Hardware, tracker: Tracker,
          resume: Optional[Resume], neighbours: Neighbours) -> Progress:
    def on_step(step: int, loss: float, lr: float) -> None:
        tracker.log_step(step, loss, lr)
        neighbours.check()

    return fit(model, data.loaders["train"], data.loaders["valid"], cfg.trainer, hardware.device, hardware.dtype,
               on_step=on_step,
               on_validation=partial(report_validation, job=job, tracker=tracker, epochs=cfg.trainer.epochs),
               save_state=partial(save_resume, job=job, tracker_id=tracker.run_id),
               resume=resume.training if resume else None, select_by=str(cfg.data.metric))


def report_validation(history: list[ValidationRecord], *, job: Job, tracker: Tracker, epochs: int) -> None:
    """After every validation: history.jsonl, W&B, and one log line."""
    record = history[-1]
    outputs.write_jsonl(job.dir / outputs.HISTORY_FILE, [r.to_dict() for r in history])
    tracker.log_epoch(step=record.step, metrics={
        "epoch": record.epoch, "valid/accuracy": record.valid_accuracy, "valid/loss": record.valid_loss,
        **({"valid/f1": record.valid_f1} if record.valid_f1 is not None else {}),
        "valid/macro_f1": record.valid_macro_f1, "valid/mcc": record.valid_mcc, "train/epoch_loss": record.train_loss,
        "train/epoch_accuracy": record.train_accuracy, "epoch_seconds": record.seconds})
    log.info("epoch %g/%d (step %d): train loss %.4f acc %.4f | valid loss %.4f acc %.4f | %.1f s, %.1f examples/s",
             record.epoch, epochs, record.step, record.train_loss, record.train_accuracy, record.valid_loss,
             record.valid_accuracy, record.seconds, record.examples / record.train_seconds)


def save_resume(state: TrainingState, *, job: Job, tracker_id: Optional[str]) -> None:
    outputs.write_resume_state(job.dir, Resume(job.computation_key, tracker_id, state).to_dict())


def score_and_save(cfg: DictConfig, job: Job, model: nn.Module, data: Data, hardware: Hardware,
                  progress: Progress, neighbours: Neighbours) -> dict[str, Any]:
    """Score the best epoch's weights once on test; write the predictions, the checkpoint and metrics.json."""
    model.load_state_dict(progress.best_weights)
    test = evaluate(model, data.loaders["test"], hardware.device, hardware.dtype)
    neighbours.count()  # and after the test pass, whose speed is compared too
    outputs.write_predictions(job.dir / outputs.PREDICTIONS_FILE, data.encoded["test"].index, test.labels,
                              test.preds, test.probs, data.classes, data.encoded["test"].n_tokens, data.test_texts)
    if cfg.trainer.save_checkpoint == "best":
        outputs.write_checkpoint(job.dir / outputs.CHECKPOINT_DIR, lambda d: (
            model.save(d), data.tokenizer.save_pretrained(d),
            outputs.write_json(d / outputs.CHECKPOINT_SETTINGS, inference_settings(cfg, job, data, hardware))))
    else:  # one an earlier run of this directory left would answer for this run (bertcmp.predict)
        outputs.remove_checkpoint(job.dir)
    metrics = run_metrics(progress, test, data, cfg, count_parameters(model), hardware, neighbours.most)
    job.write_status("completed", **metrics)
    outputs.clear_resume_state(job.dir)  # only the best weights outlive the run (or none)
    return metrics


def inference_settings(cfg: DictConfig, job: Job, data: Data, hardware: Hardware) -> dict[str, Any]:
    """What it takes to use the checkpoint as the run did (bertcmp.predict): the classes, the head, how texts were
    tokenized, and the precision."""
    d, m = cfg.data, cfg.model
    return {"model": job.model, "computation_key": job.computation_key, "classes": data.classes,
            "head": str(m.head), "pooling": str(m.pooling), "precision": hardware.precision,
            "max_length": data.max_length, "truncation": str(d.truncation), "head_tokens": data.head_tokens,
            "text_column": d.text_column, "text_pair_column": d.text_pair_column}


def run_metrics(progress: Progress, test: Evaluation, data: Data, cfg: DictConfig, params: int,
                hardware: Hardware, shared_with: int = 1) -> dict[str, Any]:
    """What metrics.json records of a completed run: the best epoch's validation, the test, speed, size."""
    best = progress.history[progress.best_index]
    seconds = sum(r.train_seconds for r in progress.history)
    return {
        "metric": str(cfg.data.metric),  # what picked the best epoch, and what the comparison uses by default
        "best_epoch": progress.best_epoch,
        # all epochs, or trainer.patience validations without a better one
        "stopped": {"reason": progress.stopped or "epochs", "epoch": progress.history[-1].epoch,
                    "step": progress.step},
        "classes": data.classes,
        "valid": {"accuracy": best.valid_accuracy, "loss": best.valid_loss, "macro_f1": best.valid_macro_f1,
                  "mcc": best.valid_mcc, **({"f1": best.valid_f1} if best.valid_f1 is not None else {})},
        "test": test.scores(data.classes),
        "inference": test.speed(),  # the test pass: no gradients, the run's precision and padding
        "train": {
            "seconds": seconds,
            "examples_per_s": sum(r.examples for r in progress.history) / seconds,
            "tokens_per_s": sum(r.tokens for r in progress.history) / seconds,  # real tokens, padding excluded
            "padded_tokens_per_s": sum(r.padded_tokens for r in progress.history) / seconds,
            "final_loss": progress.history[-1].train_loss,
            "effective_batch_size": cfg.data.batch_size * cfg.trainer.grad_accum_steps,
            "gradient_checkpointing": gradient_checkpointing(cfg, data),
        },
        "data": {"name": cfg.data.name, **{split: len(enc) for split, enc in data.encoded.items()},
                 "max_length": data.max_length,  # the length used
                 **({"head_tokens": data.head_tokens} if str(cfg.data.truncation) == "head_tail" else {}),
                 "truncated": {split: float(enc.truncated.mean()) for split, enc in data.encoded.items()}},
        "params": params,
        "peak_memory_mb": peak_memory_mb(hardware.device),
        "device": str(hardware.device),
        "precision": hardware.precision,
        # what the speeds were measured on: runs compare on cost only where this is the same (bertcmp.compare)
        "hardware": hardware_record(hardware, shared_with),
        # what healed the run (out of memory: smaller micro-batches; a NaN loss: fp32 from a step), in order
        "recovered": progress.recovered,
    }


def hardware_record(hardware: Hardware, shared_with: int) -> dict[str, Any]:
    """The device by its own name, how many (one: a job trains on one device), the precision, and how many jobs
    trained on it at once, this one included; on the CPU also the threads the job used."""
    precision = {"bfloat16": "bf16", "float16": "fp16"}.get(hardware.precision, hardware.precision)  # as configured
    record = {"device_name": device_name(hardware.device), "device_count": 1, "precision": precision,
              "shared_with": shared_with}
    if hardware.device.type == "cpu":
        record["threads"] = torch.get_num_threads()
    return record


def reset_peak_memory(device: torch.device) -> None:
    """Count the peak from here: the model built, before training. On the CPU the process's peak resident memory
    is reset too (Linux), or a job would inherit the peak of an earlier job run by the same process."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the process's peak resident set size (Linux 4.0 and later)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated on a GPU; on the CPU, the peak resident memory of this process since
    reset_peak_memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

