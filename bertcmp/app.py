"""The task function: one fine-tuning run, the unit that a Hydra sweep repeats.

    python -m bertcmp -m experiment=smoke model=bert,modernbert

`main` is Hydra's entry point. `run_job` holds the failure policy: skip a run completed earlier, record
why a run failed, let a sweep's other runs go on. `train_and_test` is the recipe, as named steps:

    set_up -> load_data -> build_model -> load_resume -> start_tracking -> train -> score_and_save -> release_memory

This is the one place that wires data, model, training and tracking.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import datasets
import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerFast, set_seed
from transformers.utils import logging as transformers_logging

import bertcmp
from bertcmp import outputs
from bertcmp.config import CHECKPOINTING_FROM, register_configs, validate
from bertcmp.data import Encoded, classes, column, load_splits, make_loader, shown_texts, tokenize_splits
from bertcmp.devices import Neighbours, device_name, job_device
from bertcmp.errors import BertcmpError, ConfigError
from bertcmp.model import (build_classifier, count_parameters, describe_encoder, enable_gradient_checkpointing,
                           make_tokenizer)
from bertcmp.runs import computation_key
from bertcmp.sweep import CpuTurns, TakingTurns, cpu_cores, cpu_threads_per_job, launcher_parallelism
from bertcmp.tracking import Choice, Tracker, choose_mode, start_run, sweep_group
from bertcmp.train import (Evaluation, Progress, TrainingState, ValidationRecord, evaluate, fit, free_memory,
                           resolve_precision)
from hydra_plugins.bertcmp_ray_launcher.ray_launcher import RayLauncher

log = logging.getLogger("bertcmp")

register_configs()
# Hydra finds launchers by scanning the hydra_plugins namespace, which an editable install (pip install -e) hides
# from that scan: hydra/launcher=ray's launcher is registered here
Plugins.instance().register(RayLauncher)
# conf/hydra/launcher/ray.yaml is named as Ray users expect; hydra-ray-launcher's own node has that name too, which
# Hydra only warns about (the file wins, and matches that node's schema)
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/ray' is validated against ConfigStore schema")
# an absolute path: found the same from a source checkout, an editable install or a wheel, whatever the cwd
CONFIG_DIR = str(resources.files("bertcmp.conf"))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    """Run one job; return its best validation score on data.metric (what a Hydra sweeper would optimise)."""
    return run_job(cfg, Job.from_hydra(cfg))


# ---------------------------------------------------------------------------------------------- the job


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (enums as their strings), as W&B and the run's key see it."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


@dataclass
class Job:
    """This Hydra job: where it writes, what it is called, and its metrics.json, rewritten whole at every
    status change."""
    dir: Path
    name: str                  # the W&B run's name: the job's overrides, or the model family
    group: Optional[str]       # the W&B group: the sweep; None for a single run
    num: int                   # the job's number in its sweep (0 for a single run)
    overrides: list[str]
    model: str
    computation_key: str       # what the run computes (bertcmp.runs.computation_key)
    multirun: bool = False
    parallel_jobs: int = 1     # jobs the launcher runs at once on this machine
    requeues: int = 0          # times the cluster stopped and requeued this run (time limit, preemption)
    started: float = field(default_factory=time.time)

    @classmethod
    def create(cls, cfg: DictConfig, directory: str | Path, overrides: Sequence[str] = (), name: Optional[str] = None,
               group: Optional[str] = None, num: int = 0, multirun: bool = False, parallel_jobs: int = 1) -> "Job":
        """A job writing into `directory`; a single run unless the sweep's facts are given."""
        model = str(cfg.model.name)
        return cls(dir=Path(directory), name=name or model, group=group, num=num, overrides=list(overrides),
                   model=model, computation_key=computation_key(plain_config(cfg)), multirun=multirun,
                   parallel_jobs=parallel_jobs)

    @classmethod
    def from_hydra(cls, cfg: DictConfig) -> "Job":
        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return cls.create(cfg, hc.runtime.output_dir, hc.overrides.task, hc.job.override_dirname)
        return cls.create(cfg, hc.runtime.output_dir, hc.overrides.task, hc.job.override_dirname,
                          group=sweep_group(hc.sweep.dir), num=hc.job.num, multirun=True,
                          parallel_jobs=launcher_parallelism(hc.launcher))

    def named_by(self, family: str) -> None:
        """Name the run by its encoder's family once it is known (model=auto reads it from the model's config)."""
        if self.name == self.model:
            self.name = family
        self.model = family

    def tracked_config(self, cfg: DictConfig) -> dict[str, Any]:
        config = plain_config(cfg)
        # the family too: model=auto runs are told apart by it in W&B's tables and filters
        config["run"] = {"dir": str(self.dir), "overrides": self.overrides, "job_num": self.num, "model": self.model}
        return config

    def record_end(self, status: str, error: str) -> None:
        """Record how the run ended, where the disk still allows it (the run's own error says why if not)."""
        try:
            self.write_status(status, error=error)
        except BertcmpError as err:
            log.warning("%s could not be recorded: %s", status, err)

    def write_status(self, status: str, **fields: Any) -> None:
        now = time.time()
        outputs.write_json(self.dir / outputs.METRICS_FILE, {
            "status": status, "model": self.model, **fields, "overrides": self.overrides,
            "computation_key": self.computation_key, "requeues": self.requeues,
            "wall_seconds": now - self.started,
            "started_at": datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds"),
            "updated_at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
            "versions": {"bertcmp": bertcmp.__version__, "torch": torch.__version__,
                         "transformers": version("transformers"), "python": sys.version.split()[0]},
        })


def run_job(cfg: DictConfig, job: Job) -> Optional[float]:
    """The failure policy around the recipe. The run's directory belongs to one live process: a run that another
    process is running is left to it. A run completed earlier with the same computation is skipped. In a sweep, a
    failing job records why in its metrics.json and returns NaN, so its siblings go on; the end-of-sweep report
    (bertcmp.sweep.SweepReport) lists the failures and exits non-zero."""
    with outputs.holding(job.dir) as holder:
        if holder is not None:
            log.log(logging.WARNING if job.multirun else logging.ERROR, "skipping %s: %s is running it (another "
                    "sweep in the same directory); this one leaves it be", job.dir, holder)
            if job.multirun:
                return float("nan")  # the sweep's other runs go on
            raise SystemExit(1)
        if leftovers := outputs.remove_leftovers(job.dir):
            log.info("removed what an interrupted run left in %s: %s", job.dir, ", ".join(sorted(leftovers)))
        return _run_held(cfg, job)


def _run_held(cfg: DictConfig, job: Job) -> Optional[float]:
    previous = outputs.read_json(job.dir / outputs.METRICS_FILE) or {}
    if previous.get("status") == "completed" and previous.get("computation_key") == job.computation_key:
        outputs.clear_resume_state(job.dir)  # left when the process died between recording completion and this
        metric = previous.get("metric", "accuracy")  # runs of bertcmp 0.4 and older selected by accuracy
        log.info("skipping %s: completed earlier with this config (valid %s %.4f)", job.dir.name, metric,
                 previous["valid"][metric])
        return previous["valid"][metric]
    if previous.get("computation_key") == job.computation_key:
        job.requeues = previous.get("requeues", 0)
    if previous.get("status") == "running":  # yet nobody holds the directory: its process is gone
        log.warning("the earlier run in %s stopped without recording why (killed, or its disk filled up): "
                    "taken as interrupted", job.dir)
    elif previous.get("status") == "requeued":
        log.info("the cluster requeued this run (%d time(s) so far): resuming it", job.requeues)
    job.write_status("running")
    try:
        with sigterm_as_interrupt():
            return train_and_test(cfg, job)
    except SystemExit as stop:
        if _requeued_by_submitit(stop):  # its handler of the time-limit / preemption signal, once it requeued us
            job.requeues += 1
            job.record_end("requeued", error="stopped by the cluster (time limit or preemption) and requeued; "
                                             "the requeued job resumes from the last validation")
            log.warning("stopped by the cluster (time limit or preemption) and requeued (%d time(s)): the requeued "
                        "job resumes from the last validation", job.requeues)
        raise
    except KeyboardInterrupt:
        job.record_end("interrupted", error="interrupted (Ctrl-C or SIGTERM); run again to resume")
        log.warning("interrupted; the same command resumes from the last finished epoch")
        raise SystemExit(130) from None  # the shell's code for Ctrl-C; the sweep stops too
    except BertcmpError as err:  # the user's input or a full disk: one line that says what is wrong, no traceback
        job.record_end("failed", error=str(err))
        log.error("%s", err)
        failure: BaseException = SystemExit(1)
    except Exception as err:  # a bug or the machine (out of memory, ...): the traceback goes to the job log
        if _not_requeued_by_submitit(err):  # the signal came, but the run may not be requeued again
            job.record_end("interrupted", error=f"{err} The same command resumes it (hydra.sweep.dir=<this sweep>).")
            log.error("interrupted: %s Raise hydra.launcher.max_num_timeout, or run the same command again to "
                      "resume.", err)
            raise  # submitit records the job as over
        job.record_end("failed", error=f"{type(err).__name__}: {err}")
        log.exception("run failed")
        failure = err
    if job.multirun:
        return float("nan")
    raise failure


def _requeued_by_submitit(stop: SystemExit) -> bool:
    """Whether submitit's signal handler raised this exit after requeueing the job (SLURM's time limit or a
    preemption; submitit's local executor too)."""
    frames = traceback.extract_tb(stop.__traceback__)
    return bool(frames) and "submitit" in Path(frames[-1].filename).parts


def _not_requeued_by_submitit(err: Exception) -> bool:
    """submitit's "Job not requeued because: timed-out too many times." (hydra.launcher.max_num_timeout)."""
    return type(err).__name__ == "UncompletedJobError" and type(err).__module__.startswith("submitit")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (kill, SLURM's time limit) like Ctrl-C, so the run is recorded as interrupted."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------------------------- the recipe


def train_and_test(cfg: DictConfig, job: Job) -> float:
    """Fine-tune on train, pick the best epoch on valid by data.metric, score it once on test; return its valid
    score on that metric."""
    validate(cfg)  # before anything slow, so a bad value costs nothing
    tracking = choose_mode(str(cfg.logger.mode), job.dir)  # and can W&B be reached?
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


def load_data(cfg: DictConfig, hardware: Hardware, max_length: int) -> Data:
    """Read and split the data, get the tokenizer, tokenize once (cached for every later run), batch."""
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
    return Data(tokenizer, names, max_length, head_tokens, encoded, loaders, shown_texts(splits["test"]))


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


if __name__ == "__main__":
    main()
