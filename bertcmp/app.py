"""The task function: one fine-tuning run, the unit that a Hydra sweep repeats.

    python -m bertcmp -m experiment=smoke model=bert,modernbert

The recipe, top to bottom: seed -> data -> tokenizer -> model -> train, validating every epoch -> best
epoch's weights -> test -> outputs. This is the one place that wires data, model, training and tracking.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import resource
import signal
import sys
import time
from datetime import datetime, timezone
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Optional

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from transformers import set_seed

import bertcmp
from bertcmp import outputs
from bertcmp.config import register_configs, validate
from bertcmp.data import column, load_splits, make_loader, tokenize_splits
from bertcmp.errors import BertcmpError
from bertcmp.model import build_classifier, check_pretrained, count_parameters, make_tokenizer
from bertcmp.sweep import cpu_threads_per_job, launcher_parallelism
from bertcmp.tracking import start_run
from bertcmp.train import EpochRecord, Evaluation, FitResult, evaluate, fit, resolve_device, resolve_precision

log = logging.getLogger("bertcmp")

register_configs()
# an absolute path: found the same from a source checkout, an editable install or a wheel, whatever the cwd
CONFIG_DIR = str(resources.files("bertcmp.conf"))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    """Run one job; return its best validation accuracy (what a Hydra sweeper would optimise).

    In a sweep, a failing job records why in its metrics.json and returns NaN, so its siblings go on; the
    end-of-sweep report (bertcmp.sweep.SweepReport) lists the failures and exits non-zero."""
    run = RunInfo.from_hydra(cfg)
    previous = outputs.read_json(run.dir / outputs.METRICS) or {}
    if previous.get("status") == "completed" and previous.get("config_hash") == run.config_hash:
        log.info("skipping %s: completed earlier with this config (valid accuracy %.4f)", run.dir.name,
                 previous["valid"]["accuracy"])
        return previous["valid"]["accuracy"]
    run.write_status("running")
    try:
        with sigterm_as_interrupt():
            return experiment(cfg, run)
    except KeyboardInterrupt:
        run.write_status("interrupted", error="interrupted (Ctrl-C or SIGTERM); run again to resume")
        log.warning("interrupted; the same command resumes from the last finished epoch")
        raise SystemExit(130) from None  # the shell's code for Ctrl-C; the sweep stops too
    except BertcmpError as err:  # the user's input: one line that says what is wrong, no traceback
        run.write_status("failed", error=str(err))
        log.error("%s", err)
        failure: BaseException = SystemExit(1)
    except Exception as err:  # a bug or the machine (out of memory, ...): the traceback goes to the job log
        run.write_status("failed", error=f"{type(err).__name__}: {err}")
        log.exception("run failed")
        failure = err
    if run.multirun:
        return float("nan")
    raise failure


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


def experiment(cfg: DictConfig, run: "RunInfo") -> float:
    validate(cfg)  # before anything slow, so a bad value costs nothing
    check_pretrained(cfg.model, cfg.data.max_length)
    set_seed(cfg.seed)
    device = resolve_device(cfg.trainer.device, run.job_num)
    dtype = resolve_precision(cfg.trainer.precision, device)
    if device.type == "cpu":  # parallel jobs share the cores instead of fighting over them
        torch.set_num_threads(cpu_threads_per_job(run.parallel_jobs))

    # data and tokenizer: texts are tokenized once, and the tokens cached for every later run
    splits = load_splits(cfg.data)
    tokenizer = make_tokenizer(cfg.model, column(splits["train"], "text"))
    encoded = tokenize_splits(splits, tokenizer, cfg.data.max_length, cfg.cache_dir)
    eval_batch = cfg.data.eval_batch_size or cfg.data.batch_size
    loader = partial(make_loader, pad_id=tokenizer.pad_token_id, max_length=cfg.data.max_length,
                     padding=cfg.data.padding.value, pool_batches=cfg.data.pool_batches,
                     num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda")
    train_loader = loader(encoded["train"], cfg.data.batch_size, shuffle=True, seed=cfg.seed)
    valid_loader = loader(encoded["valid"], eval_batch)
    test_loader = loader(encoded["test"], eval_batch)
    log.info("data: %s train / %s valid / %s test examples", *(len(encoded[s]) for s in ("train", "valid", "test")))

    # model: re-seeded so its initialisation does not depend on how much randomness the data path used
    set_seed(cfg.seed)
    model = build_classifier(cfg.model, tokenizer, cfg.data.max_length, device)
    log.info("model: %s (%s), %.1fM parameters, on %s, %s", cfg.model.name.value,
             cfg.model.pretrained or "from scratch", count_parameters(model) / 1e6, device,
             "fp32" if dtype is None else str(dtype).removeprefix("torch."))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    resume = outputs.read_resume_state(run.dir)
    if resume is not None and resume.get("config_hash") != run.config_hash:
        log.warning("ignoring %s/%s: it was saved with another config", run.dir, outputs.RESUME)
        resume = None
    if resume is not None:
        log.info("resuming after epoch %d of %d", len(resume["fit"]["history"]), cfg.trainer.epochs)

    tracker = start_run(cfg.logger, run.tracked_config(cfg), run.name, run.group, run.dir,
                        run_id=resume["tracker_id"] if resume else None)
    try:
        def save_state(state: dict) -> None:
            outputs.write_resume_state(run.dir, {"config_hash": run.config_hash, "tracker_id": tracker.run_id,
                                                 "fit": state})

        def on_epoch(history: list[EpochRecord]) -> None:
            record = history[-1]
            outputs.write_jsonl(run.dir / outputs.HISTORY, [r.to_dict() for r in history])
            tracker.log_epoch(step=record.step, metrics={
                "epoch": record.epoch, "valid/accuracy": record.valid_accuracy, "valid/loss": record.valid_loss,
                "valid/f1": record.valid_f1, "train/epoch_loss": record.train_loss,
                "train/epoch_accuracy": record.train_accuracy, "epoch_seconds": record.seconds})
            log.info("epoch %d/%d: train loss %.4f acc %.4f | valid loss %.4f acc %.4f | %.1f s, %.1f examples/s",
                     record.epoch, cfg.trainer.epochs, record.train_loss, record.train_accuracy, record.valid_loss,
                     record.valid_accuracy, record.seconds, record.examples / record.train_seconds)

        result = fit(model, train_loader, valid_loader, cfg.trainer, device, on_step=tracker.log_step,
                     on_epoch=on_epoch, save_state=save_state, resume=resume["fit"] if resume else None)

        # test once, with the weights of the best validation epoch
        model.load_state_dict(result.best_state)
        test = evaluate(model, test_loader, device, dtype)
        outputs.write_predictions(run.dir / outputs.PREDICTIONS, encoded["test"].index, test.labels, test.preds,
                                  test.prob_pos)
        if cfg.trainer.save_checkpoint == "best":
            outputs.write_checkpoint(run.dir / outputs.CHECKPOINT, result.best_state, lambda d: (
                model.encoder.config.save_pretrained(d), tokenizer.save_pretrained(d)))

        metrics = run_metrics(result, test, encoded, cfg, count_parameters(model), device, dtype)
        run.write_status("completed", **metrics)
        outputs.clear_resume_state(run.dir)  # only the best weights outlive the run (or none)
        tracker.summarise({"best_epoch": result.best_epoch, **{f"test/{k}": v for k, v in test.metrics().items()},
                           "train/examples_per_s": metrics["train"]["examples_per_s"]})
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    tracker.finish()
    log.info("%s: best epoch %d, valid accuracy %.4f, test accuracy %.4f (%s)", cfg.model.name.value,
             result.best_epoch, metrics["valid"]["accuracy"], test.accuracy, run.dir)
    return metrics["valid"]["accuracy"]


def run_metrics(result: FitResult, test: Evaluation, encoded: dict, cfg: DictConfig, params: int,
                device: torch.device, dtype: Optional[torch.dtype]) -> dict[str, Any]:
    """What metrics.json records of a completed run: the best epoch's validation, the test, speed, size."""
    best = result.history[result.best_epoch - 1]
    seconds = sum(r.train_seconds for r in result.history)
    return {
        "best_epoch": result.best_epoch,
        "valid": {"accuracy": best.valid_accuracy, "loss": best.valid_loss, "f1": best.valid_f1},
        "test": test.metrics(),
        "train": {
            "seconds": seconds,
            "examples_per_s": sum(r.examples for r in result.history) / seconds,
            "tokens_per_s": sum(r.tokens for r in result.history) / seconds,  # real tokens, padding excluded
            "padded_tokens_per_s": sum(r.padded_tokens for r in result.history) / seconds,
            "final_loss": result.history[-1].train_loss,
        },
        "data": {"name": cfg.data.name, "train": len(encoded["train"]), "valid": len(encoded["valid"]),
                 "test": len(encoded["test"]), "max_length": cfg.data.max_length},
        "params": params,
        "peak_memory_mb": peak_memory_mb(device),
        "device": str(device),
        "precision": "fp32" if dtype is None else str(dtype).removeprefix("torch."),
    }


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated on a GPU; on the CPU, the peak resident memory of this process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class RunInfo:
    """Where this job writes, what it is called, and its metrics.json, rewritten whole at every status change."""

    def __init__(self, directory: Path, name: str, group: Optional[str], job_num: int, overrides: list[str],
                 model: str, config_hash: str, multirun: bool = False, parallel_jobs: int = 1):
        self.dir, self.name, self.group, self.job_num = directory, name, group, job_num
        self.overrides, self.model, self.config_hash = overrides, model, config_hash
        self.multirun, self.parallel_jobs = multirun, parallel_jobs
        self.started = time.time()

    @classmethod
    def from_hydra(cls, cfg: DictConfig) -> "RunInfo":
        hc = HydraConfig.get()
        directory = Path(hc.runtime.output_dir)
        multirun = hc.mode == RunMode.MULTIRUN
        group = "_".join(Path(hc.sweep.dir).parts[-2:]) if multirun else None
        name = hc.job.override_dirname or str(cfg.model.name.value)
        return cls(directory, name, group, hc.job.num if multirun else 0, list(hc.overrides.task),
                   str(cfg.model.name.value), config_hash(cfg), multirun,
                   launcher_parallelism(hc.launcher) if multirun else 1)

    def tracked_config(self, cfg: DictConfig) -> dict[str, Any]:
        config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        config["run"] = {"dir": str(self.dir), "overrides": self.overrides, "job_num": self.job_num}
        return config

    def write_status(self, status: str, **fields: Any) -> None:
        now = time.time()
        outputs.write_json(self.dir / outputs.METRICS, {
            "status": status, "model": self.model, **fields, "overrides": self.overrides,
            "config_hash": self.config_hash,
            "wall_seconds": now - self.started,
            "started_at": datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds"),
            "updated_at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
            "versions": {"bertcmp": bertcmp.__version__, "torch": torch.__version__,
                         "transformers": _version("transformers"), "python": sys.version.split()[0]},
        })


def config_hash(cfg: DictConfig) -> str:
    """Identity of what a run computes: the resolved config without where it caches or how it is tracked."""
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    config.pop("logger", None)
    config.pop("cache_dir", None)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _version(package: str) -> str:
    from importlib.metadata import version
    return version(package)


if __name__ == "__main__":
    main()
