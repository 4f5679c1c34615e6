"""The task function in-process: a whole tiny run through the recipe's steps, the skip of a completed run, the
run's identity, and bad input, composed with Hydra's compose API as the command line would compose it."""

import errno
import json
import logging
import math
import os
import socket
import subprocess
import sys

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from bertcmp.app import Job, run_job
from bertcmp.data import column, load_splits
from bertcmp.devices import device_name
from conftest import closed_port, compose_config

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


HEAVY = ("torch", "transformers", "datasets")
HELP_IMPORTS = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_module(sys.argv[0], run_name="__main__")
except SystemExit as stop:
    assert not stop.code, stop.code
print("imported:", *(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.slow  # a fresh interpreter
@pytest.mark.parametrize("module", ["bertcmp", "bertcmp.compare"])
def test_help_needs_neither_torch_transformers_nor_datasets(module):
    """What makes `--help` answer in about a second instead of six: the recipe is imported once a run starts."""
    code = HELP_IMPORTS.format(heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "python -m bertcmp" in result.stdout  # the help itself
    assert result.stdout.splitlines()[-1] == "imported:"

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
    hardware = metrics["hardware"]
    assert hardware == {"device_name": device_name(torch.device("cpu")), "device_count": 1, "precision": "fp32",
                        "shared_with": hardware["shared_with"], "threads": torch.get_num_threads()}
    assert hardware["shared_with"] >= 1  # this job, and any other training on this machine meanwhile
    rows = predictions_table(job)
    texts = dict(zip(column(load_splits(cfg.data)["test"], "index"), column(load_splits(cfg.data)["test"], "text")))
    assert all(texts[int(r["index"])].startswith(r["text"].removesuffix("…")) and len(r["text"]) <= 100
               for r in rows)
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
     "model.pretrained='nobody/no-such-model' is not in the Hugging Face cache"),
    (["experiment=smoke", "trainer.grad_accum_steps=0"], "trainer.grad_accum_steps=0 must be >= 1"),
    (["experiment=smoke", "trainer.patience=-1"], "trainer.patience=-1 must be >= 1"),
    (["experiment=smoke", "trainer.eval_every=0"], "trainer.eval_every=0 must be >= 1"),
    (["experiment=smoke", "data.truncation=head_tail", "data.head_tokens=128"],  # 64 tokens, 2 of them special
     "data.head_tokens=128 must be from 1 to 61: data.truncation=head_tail keeps it from the start"),
    (["experiment=smoke", "data.test_split=train"], "data.test_split='train' must name the source's split that"),
    (["experiment=smoke", "trainer.gradient_checkpointing=sometimes"],
     "trainer.gradient_checkpointing='sometimes' must be true, false or auto (on from 2,048 tokens)"),
    (["experiment=smoke", "data=topics", "data.metric=f1"],
     "data.metric=f1 is the positive class's F1 of two-class tasks, and this task has 4 classes; use "
     "data.metric=macro_f1"),
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
    from bertcmp.recipe import Resume, load_resume
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


class _Planted:
    """What a planted state.pt could hold: unpickling it runs a command of its author's choosing."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_planted_resume_state_never_runs_code(tmp_path, caplog):
    """resume/state.pt is read as data only: a pickle that would run a shell command is refused with one warning
    line, nothing runs, and the run starts afresh and completes."""
    import torch

    cfg, job = new_job(tmp_path, *TINY)
    marker = tmp_path / "the-planted-command-ran"
    (job.dir / "resume").mkdir(parents=True)
    torch.save({"computation_key": job.computation_key, "payload": _Planted(marker)}, job.dir / "resume" / "state.pt")
    run_job(cfg, job)
    assert not marker.exists()
    assert "is not a resume state bertcmp wrote" in caplog.text and "starting afresh" in caplog.text
    assert recorded(job)["status"] == "completed" and not (job.dir / "resume").exists()


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


@pytest.mark.slow  # torch.compile takes a quarter of a minute even for a tiny model on a CPU
def test_a_compiled_run_is_reproducible_and_saves_a_plain_checkpoint(tmp_path, monkeypatch):
    """trainer.compile=true compiles the model in place. The compiled kernels draw dropout masks from a generator
    of their own, so a compiled run is not the eager run; it is the same run again with the same seed (up to the
    last bit of float32: on several CPU threads the compiled reductions are not bitwise reproducible), and with
    eager's dropout (fallback_random) the same training as eager up to the compiler's rounding. Its checkpoint
    loads into an uncompiled model and gives the run's own test probabilities."""
    import numpy as np
    import torch._inductor.config

    from bertcmp import load_classifier
    from bertcmp.data import column, load_splits

    small = (*TINY, "data.num_examples=160")  # 4 full training batches: one training graph and one evaluation

    def losses(name: str, compiled: bool) -> tuple[list[float], Job]:
        (tmp_path / name).mkdir()
        cfg, job = new_job(tmp_path / name, *small, f"trainer.compile={compiled}")
        run_job(cfg, job)
        assert recorded(job)["status"] == "completed"
        return [json.loads(line)["train_loss"] for line in (job.dir / "history.jsonl").read_text().splitlines()], job

    first, job = losses("compiled", True)
    assert losses("again", True)[0] == pytest.approx(first, rel=1e-6)
    eager = losses("eager", False)[0]
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    assert losses("eager_dropout", True)[0] == pytest.approx(eager, rel=1e-4)
    assert first != pytest.approx(eager, rel=1e-4)  # the other dropout masks

    cfg = make_cfg(*small)
    test = load_splits(cfg.data)["test"]
    probs = load_classifier(job.dir, "cpu").predict(column(test, "text")).probs[:, 1]
    recorded_probs = {int(r["index"]): float(r["prob_pos"]) for r in predictions_table(job)}
    np.testing.assert_allclose(probs, [recorded_probs[i] for i in column(test, "index")], atol=1e-5)


def predictions_table(job: Job) -> list[dict]:
    import csv

    with open(job.dir / "test_predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_four_class_task_with_string_labels(tmp_path):
    cfg, job = new_job(tmp_path, *TINY, "data=topics", "data.num_examples=1000", "trainer.epochs=3")
    run_job(cfg, job)
    metrics = recorded(job)
    names = ["business", "science", "sports", "world"]
    assert metrics["status"] == "completed" and metrics["classes"] == names
    test = metrics["test"]
    assert list(test["per_class"]) == names and sum(c["support"] for c in test["per_class"].values()) == 100
    assert test["accuracy"] > 0.5 and -1 <= test["mcc"] <= 1 and 0 < test["macro_f1"] <= 1
    assert "f1" not in test and {"macro_f1", "mcc"} <= set(metrics["valid"])  # f1 is the binary positive class's
    history = [json.loads(line) for line in (job.dir / "history.jsonl").read_text().splitlines()]
    assert all(h["valid_f1"] is None and 0 < h["valid_macro_f1"] <= 1 for h in history)
    rows = predictions_table(job)
    assert list(rows[0]) == ["index", "label", "pred", *(f"prob_{n}" for n in names), "n_tokens", "text"]
    assert {r["label"] for r in rows} == set(names)
    assert all(abs(sum(float(r[f"prob_{n}"]) for n in names) - 1) < 1e-5 for r in rows)
    correct = sum(r["label"] == r["pred"] for r in rows)
    assert correct / len(rows) == test["accuracy"]


def write_pairs(path, n: int = 400) -> str:
    """A paraphrase-like pair task in jsonl: is the second text about the same topic as the first?"""
    from bertcmp.synthetic import make_topics

    topics = make_topics(2 * n, seed=3)
    lines = []
    for i in range(n):
        a, b = 2 * i, 2 * i + 1 if i % 2 else 2 * i
        second = topics["text"][b] if i % 2 else " ".join(reversed(topics["text"][a].split(". ")))
        same = topics["label"][a] == topics["label"][b]
        lines.append(json.dumps({"sentence1": topics["text"][a], "sentence2": second,
                                 "label": "same" if same else "different"}))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_a_pair_task(tmp_path):
    source = write_pairs(tmp_path / "pairs.jsonl")
    cfg, job = new_job(tmp_path, *TINY, "data=imdb", f"data.source={source}", "data.name=pairs",
                       "data.text_column=sentence1", "data.text_pair_column=sentence2", "data.valid_size=0.1",
                       "data.test_size=0.1", "data.max_length=96")
    run_job(cfg, job)
    metrics = recorded(job)
    assert metrics["status"] == "completed" and metrics["classes"] == ["different", "same"]
    assert metrics["test"]["accuracy"] > 0.6  # the pair is read together: one text alone cannot tell
    settings = json.loads((job.dir / "checkpoint" / "bertcmp.json").read_text())
    assert settings["text_pair_column"] == "sentence2" and settings["max_length"] == 96
    assert all(" ‖ " in r["text"] for r in predictions_table(job))  # the start of both texts


@pytest.mark.parametrize("kind", ["roberta", "distilbert"])
def test_model_auto_runs_any_encoder_and_names_it_by_family(request, tmp_path, kind):
    directory = request.getfixturevalue(f"tiny_{kind}_dir")
    cfg, job = new_job(tmp_path, *TINY, "model=auto", f"model.pretrained={directory}", "data.max_length=600",
                       "trainer.epochs=1")
    run_job(cfg, job)
    metrics = recorded(job)
    assert metrics["status"] == "completed" and metrics["model"] == kind
    assert metrics["data"]["max_length"] == 512 and job.name == kind  # RoBERTa: 514 positions, 512 tokens
    assert job.tracked_config(cfg)["run"]["model"] == kind  # what W&B groups and filters by


def test_model_auto_without_a_model_is_one_line(tmp_path, caplog):
    cfg, job = new_job(tmp_path, *TINY, "model=auto")
    with pytest.raises(SystemExit):
        run_job(cfg, job)
    assert "model=auto needs model.pretrained=<a Hub id or a local directory>" in caplog.text
    assert recorded(job)["status"] == "failed"


def test_three_families_compared(tmp_path, tiny_roberta_dir, capsys):
    """BERT, ModernBERT and RoBERTa on one task, compared as a sweep would be: a ranking and two head-to-heads."""
    from bertcmp.compare import build_report, print_report

    sweep = tmp_path / "sweep"
    for num, model in enumerate(["model=bert", "model=modernbert", f"model=auto model.pretrained={tiny_roberta_dir}"]):
        overrides = (*TINY, "data=topics", *model.split())
        cfg = make_cfg(*overrides)
        job = Job.create(cfg, sweep / f"{num}_run", overrides, num=num, multirun=True)
        job.dir.mkdir(parents=True)
        run_job(cfg, job)
        (job.dir / ".hydra").mkdir()
        (job.dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    report = build_report([str(sweep)])
    (task,) = report.tasks
    assert sorted(s.family for s in task.ranking) == ["bert", "modernbert", "roberta"]
    accuracies = [s.valid_score for s in task.ranking]
    assert accuracies == sorted(accuracies, reverse=True)
    assert len(report.head_to_heads) == 2 and all(h.evidence == "items" for h in report.head_to_heads)
    leader = report.head_to_heads[0].encoder_a
    assert {h.encoder_b for h in report.head_to_heads} | {leader} == {"BERT", "ModernBERT", "RoBERTa"}
    assert all(h.comparisons == 2 and h.adjusted_p >= h.p_value for h in report.head_to_heads)
    print_report(report)
    printed = capsys.readouterr().out
    assert "encoders by their best configuration on validation" in printed and "Holm-adjusted p" in printed


def test_taking_turns_changes_no_number(tmp_path, monkeypatch):
    """A job taking turns with others for the CPU computes exactly what it computes alone."""
    outcomes = []
    for turns in ("1", "0"):
        monkeypatch.setenv("BERTCMP_CPU_TURNS", turns)
        (tmp_path / turns).mkdir()
        cfg, job = new_job(tmp_path / turns, *TINY)
        run_job(cfg, job)
        outcomes.append(((job.dir / "history.jsonl").read_text(), (job.dir / "test_predictions.csv").read_text()))
    history = [[{k: v for k, v in json.loads(line).items() if "seconds" not in k} for line in h.splitlines()]
               for h, _ in outcomes]
    assert history[0] == history[1] and outcomes[0][1] == outcomes[1][1]


# ---------------------------------------------------------------------------------------------- real machines


def test_online_tracking_without_a_server_fails_before_any_data_loads(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_BASE_URL", closed_port())
    cfg = compose_config(*TINY, "logger.mode=online", f"cache_dir={tmp_path / 'cache'}")
    job = Job.create(cfg, tmp_path / "run", TINY)
    with pytest.raises(SystemExit) as stop:
        run_job(cfg, job)
    assert stop.value.code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("logger.mode=online but the W&B server http://127.0.0.1:")
    assert recorded(job)["status"] == "failed" and not (tmp_path / "cache").exists()


def test_a_run_dir_belongs_to_one_live_process(tmp_path, caplog):
    from bertcmp import outputs

    cfg, job = new_job(tmp_path, *TINY)
    with outputs.holding(job.dir) as holder:  # as another sweep in the same directory would
        assert holder is None
        sibling = Job.create(cfg, job.dir, TINY, multirun=True)
        assert math.isnan(run_job(cfg, sibling))  # skipped: the sweep's other runs go on
        with pytest.raises(SystemExit):
            run_job(cfg, Job.create(cfg, job.dir, TINY))
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [f"skipping {job.dir}: process {os.getpid()} on {socket.gethostname()} is running it (another "
                     "sweep in the same directory); this one leaves it be"] * 2
    assert not (job.dir / "metrics.json").exists()  # the holder's files are its own

    # a process that held it and was killed lets go of it: the next run takes over
    holding = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                                "from bertcmp.outputs import holding; h = holding(Path(sys.argv[1])); h.__enter__(); "
                                "print('held', flush=True); time.sleep(60)", str(job.dir)], stdout=subprocess.PIPE,
                               text=True)
    assert holding.stdout.readline() == "held\n"
    assert outputs.is_held(job.dir) is True
    holding.kill()
    holding.wait()
    assert outputs.is_held(job.dir) is False
    assert run_job(cfg, job) > 0.5 and recorded(job)["status"] == "completed"


def test_leftovers_of_a_killed_process_are_removed(tmp_path, caplog):
    cfg, job = new_job(tmp_path, *TINY)
    (job.dir / "resume").mkdir()
    leftovers = [".checkpoint.tmp99999/model.safetensors", ".history.jsonl.tmp99999", ".metrics.json.tmp99999",
                 "resume/.state.pt.tmp99999"]
    for name in leftovers:
        (job.dir / name).parent.mkdir(exist_ok=True)
        (job.dir / name).write_text("half")
    with caplog.at_level(logging.INFO, logger="bertcmp"):
        run_job(cfg, job)
    assert sorted(p.name for p in job.dir.iterdir() if p.name.startswith(".")) == [".lock"]
    assert "removed what an interrupted run left" in caplog.text

    # the process died right after recording completion, before removing its resume state: the skip removes it
    (job.dir / "resume").mkdir()
    (job.dir / "resume" / "state.pt").write_bytes(b"weights and optimizer state")
    run_job(cfg, Job.create(cfg, job.dir, TINY))
    assert not (job.dir / "resume").exists()


def test_a_full_disk_is_one_line_and_the_same_command_resumes(tmp_path, monkeypatch, caplog):
    """The disk fills up in epoch 2 (every write from then on fails, the record of the failure too); once there
    is room, the same command takes the stale `running` as interrupted and resumes to the uninterrupted numbers."""
    from bertcmp.runs import load_runs

    epochs = (*TINY, "trainer.epochs=3")
    cfg, whole = new_job(tmp_path, *epochs)
    run_job(cfg, whole)

    real_fsync, writes = os.fsync, []

    def fsync(fd):
        writes.append(fd)
        if len(writes) >= 5:  # the disk is full from the fifth file on
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    broken = Job.create(cfg, tmp_path / "full", epochs)
    broken.dir.mkdir()
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(SystemExit) as stop:
        run_job(cfg, broken)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert stop.value.code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"no space left on the disk holding {broken.dir} (writing history.jsonl): free some "
                      "space or write elsewhere (hydra.run.dir, hydra.sweep.dir, cache_dir), then run the same "
                      "command again; a run goes on from its last saved epoch"]
    assert "failed could not be recorded: no space left" in caplog.text
    assert recorded(broken)["status"] == "running"  # as the full disk left it
    assert not [p for p in broken.dir.rglob(".*.tmp*")]  # no half-written file
    found = load_runs([str(broken.dir)])
    assert found.runs[0].status == "interrupted" and "the same command resumes it" in found.runs[0].metrics["error"]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bertcmp"):
        run_job(cfg, Job.create(cfg, broken.dir, epochs))
    assert "stopped without recording why (killed, or its disk filled up): taken as interrupted" in caplog.text
    assert "resuming after epoch 2 of 3" in caplog.text  # its state was saved before the disk filled
    after, reference = recorded(broken), recorded(whole)
    assert after["status"] == "completed"
    assert (after["valid"], after["test"]) == (reference["valid"], reference["test"])


@pytest.mark.parametrize("ending", ["completed", "failed", "bug", "interrupted"])
def test_a_job_releases_its_memory_however_it_ends(tmp_path, monkeypatch, ending):
    """The model is unreachable when the job's memory is released (inside its GPU lease), on every exit path."""
    import gc
    import weakref

    from bertcmp import recipe
    from bertcmp.errors import TrainingError

    models, released = [], []
    build = recipe.build_model

    def build_and_watch(*args, **kwargs):
        model = build(*args, **kwargs)
        models.append(weakref.ref(model))
        return model

    def release(device):
        gc.collect()
        released.append([ref() is None for ref in models])

    monkeypatch.setattr(recipe, "build_model", build_and_watch)
    monkeypatch.setattr(recipe, "release_memory", release)
    if ending != "completed":
        error = {"failed": TrainingError("the loss became NaN"), "bug": RuntimeError("a bug"),
                 "interrupted": KeyboardInterrupt()}[ending]

        def fail(*args, **kwargs):
            raise error

        monkeypatch.setattr(recipe, "score_and_save", fail)
    cfg, job = new_job(tmp_path, *TINY, "trainer.epochs=1")
    try:
        run_job(cfg, job)
    except (SystemExit, RuntimeError):
        pass
    assert released == [[True]]
    assert recorded(job)["status"] == {"bug": "failed"}.get(ending, ending)


def test_release_memory_empties_the_cuda_cache_on_a_gpu(monkeypatch):
    import torch

    from bertcmp.recipe import release_memory

    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    release_memory(torch.device("cpu"))
    assert emptied == []
    release_memory(torch.device("cuda:0"))
    assert emptied == [True]


def test_a_bf16_checkpoint_is_fine_tuned_and_saved_in_fp32(tmp_path, reviews):
    import torch
    from safetensors import safe_open
    from transformers import AutoModel

    from conftest import save_tiny_pretrained

    directory = save_tiny_pretrained("bert", tmp_path / "tiny", reviews["text"][:200])
    AutoModel.from_pretrained(directory, dtype=torch.bfloat16).save_pretrained(directory)
    cfg, job = new_job(tmp_path, *TINY, "trainer.epochs=1", f"model.pretrained={directory}")
    run_job(cfg, job)
    with safe_open(str(job.dir / "checkpoint" / "model.safetensors"), "pt") as weights:
        assert {weights.get_tensor(name).dtype for name in weights.keys()} == {torch.float32}


def test_head_tail_works_by_default_and_records_its_head(tmp_path):
    cfg, job = new_job(tmp_path, *TINY, "trainer.epochs=1", "data.truncation=head_tail")  # 64 tokens
    run_job(cfg, job)
    assert recorded(job)["data"]["head_tokens"] == 16  # a quarter of the tokens the model reads
    assert json.loads((job.dir / "checkpoint" / "bertcmp.json").read_text())["head_tokens"] == 16


def test_the_tasks_metric_picks_the_best_validation_and_is_recorded(tmp_path):
    cfg, job = new_job(tmp_path, *TINY, "trainer.epochs=3", "data.metric=mcc")
    returned = run_job(cfg, job)
    metrics = recorded(job)
    history = [json.loads(line) for line in (job.dir / "history.jsonl").read_text().splitlines()]
    best = max(range(len(history)), key=lambda i: (history[i]["valid_mcc"], -i))  # the earliest on ties
    assert metrics["metric"] == "mcc" and metrics["best_epoch"] == history[best]["epoch"]
    assert returned == metrics["valid"]["mcc"] == history[best]["valid_mcc"]


def test_gradient_checkpointing_is_on_when_asked_and_recorded(tmp_path, caplog):
    from types import SimpleNamespace

    from bertcmp.recipe import gradient_checkpointing

    cfg, job = new_job(tmp_path, *TINY, "trainer.gradient_checkpointing=true")
    with caplog.at_level(logging.INFO):
        run_job(cfg, job)
    assert recorded(job)["train"]["gradient_checkpointing"] is True and "gradient checkpointing" in caplog.text
    auto = make_cfg(*TINY, "trainer.gradient_checkpointing=auto")
    assert not gradient_checkpointing(auto, SimpleNamespace(max_length=2047))
    assert gradient_checkpointing(auto, SimpleNamespace(max_length=2048))  # e.g. ModernBERT at 8,192


def test_a_run_healed_from_out_of_memory_records_it_and_the_comparison_marks_it(tmp_path, monkeypatch, capsys,
                                                                                caplog):
    """A GPU that holds 16 examples at a time and a batch of 32: the run heals at its first step, completes,
    and says so in metrics.json, its log and the comparison."""
    import torch

    from bertcmp import recipe
    from bertcmp.compare import main as compare

    built = recipe.build_classifier

    def sixteen_at_most(*args, **kwargs):
        model = built(*args, **kwargs)
        forward = model.forward

        def limited(input_ids, attention_mask=None, token_type_ids=None):
            if model.training and len(input_ids) > 16:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB (injected)")
            return forward(input_ids, attention_mask, token_type_ids)

        model.forward = limited
        return model

    (tmp_path / "healed").mkdir()
    (tmp_path / "plain").mkdir()
    healed_cfg, healed = new_job(tmp_path / "healed", *TINY)
    monkeypatch.setattr(recipe, "build_classifier", sixteen_at_most)
    run_job(healed_cfg, healed)
    monkeypatch.setattr(recipe, "build_classifier", built)
    plain_cfg, plain = new_job(tmp_path / "plain", *TINY, "model=modernbert")
    run_job(plain_cfg, plain)
    metrics = recorded(healed)
    assert metrics["status"] == "completed" and recorded(plain)["recovered"] == []
    assert metrics["recovered"] == [{"what": "out of memory", "epoch": 1, "step": 1, "micro_batch": 16,
                                     "grad_accum_steps": 2}]
    assert "out of memory at step 1: micro-batch halved to 16 examples, accumulation doubled to 2" in caplog.text
    capsys.readouterr()
    assert compare([str(tmp_path / "healed" / "run"), str(tmp_path / "plain" / "run"), "--out",
                    str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    assert "(healed: 1)" in printed
    assert "note: healed run run: out of memory at step 1: micro-batch 16 x 2 accumulation" in printed


def test_a_run_past_its_requeues_ends_interrupted_with_submitits_reason(tmp_path, monkeypatch, caplog):
    """submitit's signal handler raises UncompletedJobError when the run may not be requeued again
    (hydra.launcher.max_num_timeout): the run ends `interrupted`, saying why and how to go on."""
    from submitit.core.utils import UncompletedJobError

    from bertcmp import recipe

    def times_out(*args, **kwargs):
        raise UncompletedJobError("Job not requeued because: timed-out too many times.")

    cfg, job = new_job(tmp_path, *TINY)
    monkeypatch.setattr(recipe, "train_and_test", times_out)
    with pytest.raises(UncompletedJobError):
        run_job(cfg, job)
    record = recorded(job)
    assert record["status"] == "interrupted"
    assert record["error"].startswith("Job not requeued because: timed-out too many times. The same command resumes")
    assert "Raise hydra.launcher.max_num_timeout" in caplog.text
