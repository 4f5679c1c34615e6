"""The task function in-process: a whole tiny run through the recipe's steps, the skip of a completed run, the
run's identity, and bad input, composed with Hydra's compose API as the command line would compose it."""

import json
import logging

import pytest
from hydra.errors import ConfigCompositionException

from bertcmp.app import Job, run_job
from conftest import compose_config

TINY = ("experiment=smoke", "data.num_examples=300", "trainer.epochs=2")


def make_cfg(*overrides: str):
    return compose_config(*overrides, "logger.mode=disabled")


def new_job(tmp_path, *overrides: str):
    """A single run's config and job, writing into tmp_path/run (which Hydra would have made)."""
    cfg = make_cfg(*overrides)
    job = Job.create(cfg, tmp_path / "run", overrides)
    job.dir.mkdir()
    return cfg, job


def recorded(job: Job) -> dict:
    return json.loads((job.dir / "metrics.json").read_text())


def test_a_tiny_run_completes_and_is_then_skipped(tmp_path, caplog):
    cfg, job = new_job(tmp_path, *TINY)
    accuracy = run_job(cfg, job)
    metrics = recorded(job)
    assert metrics["status"] == "completed" and metrics["valid"]["accuracy"] == accuracy
    assert metrics["computation_key"] == job.computation_key and metrics["model"] == "bert"
    truncated = metrics["data"].pop("truncated")
    assert metrics["data"] == {"name": "synthetic", "train": 240, "valid": 30, "test": 30, "max_length": 64}
    n_tokens = [int(line.split(",")[4]) for line in (job.dir / "test_predictions.csv").read_text().splitlines()[1:]]
    assert truncated["test"] == sum(n > 64 for n in n_tokens) / 30 and 0 < truncated["train"] < 0.2
    assert metrics["inference"]["examples_per_s"] > 0 and metrics["inference"]["tokens_per_s"] > 0
    assert metrics["train"]["effective_batch_size"] == 32
    assert [json.loads(line)["epoch"] for line in (job.dir / "history.jsonl").read_text().splitlines()] == [1, 2]
    for name in ("test_predictions.csv", "checkpoint/model.safetensors", "checkpoint/tokenizer.json"):
        assert (job.dir / name).is_file()
    assert not (job.dir / "resume").exists()

    written = (job.dir / "metrics.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="bertcmp"):
        assert run_job(cfg, Job.create(cfg, job.dir, TINY)) == accuracy
    assert "skipping run: completed earlier with this config" in caplog.text
    assert (job.dir / "metrics.json").stat().st_mtime_ns == written


def test_the_computation_key_ignores_tracking_and_cache_but_not_the_seed():
    def key(*overrides: str) -> str:
        return Job.create(make_cfg(*TINY, *overrides), "unused").computation_key

    assert key() == key("logger.project=elsewhere") == key("cache_dir=/tmp/elsewhere")
    assert key() != key("seed=1") and key() != key("trainer.lr=1e-4")


@pytest.mark.parametrize("args, message", [
    (["model=roberta"], "Could not find 'model/roberta'"),
    (["trainer.lrr=1e-4"], "Key 'lrr' not in 'TrainerConfig'"),
    (["trainer.lr=fast"], "trainer.lr"),
    (["data.truncation=middle"], "Invalid value 'middle', expected one of [head, tail, head_tail]"),
])
def test_config_mistakes_fail_while_composing(args, message):
    with pytest.raises(ConfigCompositionException) as error:
        make_cfg(*args)
    assert message in f"{error.value} {error.value.__cause__}"  # Hydra prints both, without a traceback


@pytest.mark.parametrize("args, message", [
    (["experiment=smoke", "trainer.lr=0"], "trainer.lr=0.0 must be > 0"),
    (["experiment=smoke", "data.batch_size=0"], "data.batch_size=0 must be >= 1"),
    (["data.source=/no/such/imdb", "model.pretrained=null"], "data.source='/no/such/imdb' does not exist"),
    (["model.pretrained=nobody/no-such-model"],  # reported before the (unreachable) default data is tried
     "model.pretrained='nobody/no-such-model' is neither a local directory nor reachable"),
    (["experiment=smoke", "trainer.grad_accum_steps=0"], "trainer.grad_accum_steps=0 must be >= 1"),
    (["experiment=smoke", "trainer.patience=-1"], "trainer.patience=-1 must be >= 1"),
    (["experiment=smoke", "trainer.eval_every=0"], "trainer.eval_every=0 must be >= 1"),
    (["experiment=smoke", "data.truncation=head_tail"],  # data=synthetic uses 64 tokens, 2 of them special
     "data.head_tokens=128 must be from 1 to 61: data.truncation=head_tail keeps it from the start"),
])
def test_bad_input_is_one_clear_line(tmp_path, caplog, args, message):
    cfg, job = new_job(tmp_path, *args)
    with pytest.raises(SystemExit) as stop:
        run_job(cfg, job)
    assert stop.value.code == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and message in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage() and errors[0].exc_info is None  # one line, no traceback
    failed = recorded(job)  # the run started: its record says why it failed
    assert failed["status"] == "failed" and message.split("'")[0] in failed["error"]
    assert not (job.dir / "test_predictions.csv").exists()


def test_a_resume_state_is_used_only_by_its_own_run(tmp_path, caplog):
    import torch

    from bertcmp import outputs
    from bertcmp.app import Resume, load_resume
    from bertcmp.train import Progress, TrainingState

    cfg, job = new_job(tmp_path, *TINY)
    assert load_resume(job, epochs=2) is None  # nothing saved yet
    state = TrainingState(progress=Progress(), model={"w": torch.ones(2)}, optimizer={}, scheduler={}, scaler={},
                          rng={})
    outputs.write_resume_state(job.dir, Resume(job.computation_key, "wandb-id", state).to_dict())
    resume = load_resume(job, epochs=2)
    assert resume.tracker_id == "wandb-id" and torch.equal(resume.training.model["w"], torch.ones(2))

    other = Job.create(make_cfg(*TINY, "trainer.lr=1e-4"), job.dir)
    assert load_resume(other, epochs=2) is None and "saved with another config" in caplog.text
    outputs.write_resume_state(job.dir, {"config_hash": job.computation_key, "fit": {}})  # bertcmp 0.1's layout
    assert load_resume(job, epochs=2) is None and "saved by another version of bertcmp" in caplog.text


def test_each_model_reads_as_far_as_it_can(tmp_path, caplog, tiny_bert_dir):
    """A sweep may ask every model for more tokens than one of them reads: that one uses its limit."""
    cfg, job = new_job(tmp_path, *TINY, f"model.pretrained={tiny_bert_dir}", "data.max_length=600",
                       "data.padding=dynamic")
    run_job(cfg, job)
    assert f"data.max_length=600 is more than {tiny_bert_dir} reads: using 512 tokens" in caplog.text
    metrics = recorded(job)
    assert metrics["status"] == "completed" and metrics["data"]["max_length"] == 512


def test_a_native_heads_checkpoint_is_a_transformers_model(tmp_path):
    """AutoModelForSequenceClassification and AutoTokenizer on <run>/checkpoint give the run's own test
    probabilities."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertcmp.data import column, load_splits

    cfg, job = new_job(tmp_path, *TINY, "model=modernbert", "model.head=native")
    run_job(cfg, job)
    model = AutoModelForSequenceClassification.from_pretrained(job.dir / "checkpoint").eval()
    tokenizer = AutoTokenizer.from_pretrained(job.dir / "checkpoint")
    test = load_splits(cfg.data)["test"]
    batch = tokenizer(column(test, "text"), truncation=True, max_length=64, padding=True, return_tensors="pt")
    with torch.no_grad():
        prob_pos = model(**batch).logits.softmax(-1)[:, 1]
    rows = [line.split(",") for line in (job.dir / "test_predictions.csv").read_text().splitlines()[1:]]
    recorded = {int(r[0]): float(r[3]) for r in rows}
    assert [recorded[i] for i in column(test, "index")] == pytest.approx(prob_pos.tolist(), abs=2e-6)
