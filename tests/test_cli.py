"""End to end: the real command line in a subprocess, as a user runs it (all marked slow)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset
from filelock import FileLock
from safetensors.torch import load_file

from bertcmp.synthetic import make_reviews
from conftest import closed_port, run_cli

pytestmark = pytest.mark.slow

FILES = ["metrics.json", "history.jsonl", "test_predictions.csv", "bertcmp.log", ".hydra/config.yaml",
         "checkpoint/model.safetensors", "checkpoint/config.json", "checkpoint/tokenizer.json"]


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory, worker_id):
    """The README's offline example, unchanged but for where it writes: run once for all pytest-xdist workers (the
    first to need it runs it under a lock, the others read what it left: pytest-xdist's documented recipe)."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # this session's: every worker's base folder lies in it
    root, said = shared / "smoke", shared / "smoke" / "said.json"
    with FileLock(str(shared / "smoke.lock")):
        if not said.exists():
            root.mkdir(exist_ok=True)
            result = run_cli("-m", "experiment=smoke", "model=bert,modernbert", "logger.mode=offline",
                             f"hydra.sweep.dir={root / 'sweep'}", cwd=root)
            said.write_text(json.dumps([result.returncode, result.stdout, result.stderr]))
    code, stdout, stderr = json.loads(said.read_text())
    assert code == 0, stdout + stderr
    return root / "sweep", subprocess.CompletedProcess([], code, stdout, stderr)


def test_smoke_sweep_writes_one_dir_per_run(smoke_sweep):
    sweep, result = smoke_sweep
    runs = sorted(p.name for p in sweep.iterdir() if (p / ".hydra").is_dir())
    assert runs == ["0_experiment=smoke,logger.mode=offline,model=bert",
                    "1_experiment=smoke,logger.mode=offline,model=modernbert"]
    for run in runs:
        for name in FILES:
            assert (sweep / run / name).is_file(), f"{run}/{name} missing"


@pytest.mark.parametrize("job, model", [(0, "bert"), (1, "modernbert")])
def test_smoke_runs_learn_and_report(smoke_sweep, job, model):
    sweep, result = smoke_sweep
    run = next(sweep.glob(f"{job}_*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["model"] == model
    assert metrics["test"]["accuracy"] >= 0.9 and metrics["valid"]["accuracy"] >= 0.9
    assert 0 < metrics["test"]["f1"] <= 1 and metrics["train"]["examples_per_s"] > 0
    truncated = metrics["data"].pop("truncated")
    assert metrics["data"] == {"name": "synthetic", "train": 3200, "valid": 400, "test": 400, "max_length": 64}
    assert set(truncated) == {"train", "valid", "test"} and all(0 <= share < 0.2 for share in truncated.values())
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert metrics["valid"]["accuracy"] == max(h["valid_accuracy"] for h in history)
    assert history[metrics["best_epoch"] - 1]["valid_accuracy"] == metrics["valid"]["accuracy"]
    with open(run / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 400 and list(rows[0]) == ["index", "label", "pred", "prob_pos", "n_tokens", "text"]
    assert metrics["hardware"]["device_count"] == 1 and metrics["hardware"]["precision"] == "fp32"
    assert sum(int(r["n_tokens"]) > 64 for r in rows) / 400 == truncated["test"]
    assert sum(r["label"] == r["pred"] for r in rows) / 400 == pytest.approx(metrics["test"]["accuracy"])
    assert "head.weight" in load_file(run / "checkpoint" / "model.safetensors")
    line = f"{model}: best epoch {metrics['best_epoch']}, valid accuracy {metrics['valid']['accuracy']:.4f}, " \
           f"test accuracy {metrics['test']['accuracy']:.4f}"
    assert line in result.stdout
    # one W&B run per job, written offline into the job's own directory
    assert len(list((run / "wandb").glob("offline-run-*/run-*.wandb"))) == 1


def test_runs_of_a_sweep_share_test_items(smoke_sweep):
    sweep, _ = smoke_sweep
    indexes = []
    for run in sorted(sweep.glob("[01]_*")):
        with open(run / "test_predictions.csv") as f:
            indexes.append([(r["index"], r["label"]) for r in csv.DictReader(f)])
    assert indexes[0] == indexes[1]


def test_same_seed_same_numbers(tmp_path):
    args = ["experiment=smoke", "data.num_examples=1000", "trainer.epochs=2", "logger.mode=disabled"]
    for name in ("a", "b"):
        result = run_cli(*args, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("a", "b"))
    assert a["valid"] == b["valid"] and a["test"] == b["test"] and a["best_epoch"] == b["best_epoch"]
    assert (tmp_path / "a" / "test_predictions.csv").read_bytes() == (tmp_path / "b" / "test_predictions.csv").read_bytes()
    losses = [[json.loads(line)["train_loss"] for line in (tmp_path / n / "history.jsonl").read_text().splitlines()]
              for n in ("a", "b")]
    assert losses[0] == losses[1]
    assert a["test"]["f1"] > 0  # a model that learnt something, not a constant guess


def test_local_model_and_local_data(tmp_path, tiny_modernbert_dir):
    """The path of a user without Hub access: model.pretrained and data.source point at local copies."""
    data = tmp_path / "imdb" / "plain_text"
    data.mkdir(parents=True)
    for split, seed in (("train", 1), ("test", 2)):
        Dataset.from_dict(make_reviews(200, seed)).to_parquet(str(data / f"{split}-00000-of-00001.parquet"))
    result = run_cli("model=modernbert", f"model.pretrained={tiny_modernbert_dir}", f"data.source={data.parent}",
                     "data.max_length=64", "trainer.epochs=1", "trainer.lr=1e-3", "logger.mode=disabled",
                     f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["data"]["max_length"] == 64 and metrics["data"]["train"] == 360 and metrics["data"]["test"] == 20


def test_help_shows_groups_keys_and_examples(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for text in ("model: auto, bert, modernbert",
                 "data: ag_news, boolq, cola, emotion, imdb, mnli, mrpc, qnli, qqp, rotten_tomatoes, rte, sst2, "
                 "synthetic, topics, yelp_polarity",
                 "experiment: batch_sweep, benchmark, benchmark_smoke, long_context, lr_sweep, modern_recipe, smoke",
                 "data=imdb,sst2,ag_news,mnli",
                 "hydra/launcher=joblib", "trainer.lr",
                 "python -m bertcmp -m experiment=smoke model=bert,modernbert"):
        assert text in result.stdout


@pytest.mark.parametrize("args, message", [
    # the other cases run in-process in test_app.py; these two check what the terminal shows
    (["trainer.lrr=1e-4"], "Key 'lrr' not in 'TrainerConfig'"),  # Hydra's own short format
    (["model.pretrained=nobody/no-such-model"],  # bertcmp's one line
     "model.pretrained='nobody/no-such-model' is not in the Hugging Face cache"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    result = run_cli(*args, "logger.mode=disabled", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output
    assert "Traceback" not in output
    metrics = tmp_path / "run" / "metrics.json"
    if metrics.exists():  # the run started: its record says why it failed
        recorded = json.loads(metrics.read_text())
        assert recorded["status"] == "failed" and message.split("'")[0] in recorded["error"]
        assert not (tmp_path / "run" / "test_predictions.csv").exists()


def test_sweep_ends_with_the_comparison(smoke_sweep):
    import matplotlib.image

    sweep, result = smoke_sweep
    report = sweep / "comparison"
    for name in ("report.md", "summary.csv", "summary.md", "comparison.json"):
        assert (report / name).is_file()
    for png in ("learning_curves.png", "accuracy_vs_lr.png", "accuracy_vs_throughput.png"):
        image = matplotlib.image.imread(report / png)  # a valid PNG, not just a file
        assert image.shape[0] > 100 and image.shape[1] > 100
    sentence = json.loads((report / "comparison.json").read_text())["head_to_heads"][0]["sentence"]
    assert sentence in result.stdout and sentence in (report / "report.md").read_text()
    assert "2 completed, 0 not completed" in result.stdout


def test_a_sweep_over_tasks_compares_each_task_apart(tmp_path):
    """The verdict issue's command, smaller: two tasks, both families, two seeds; one comparison per task, each
    paired on its own test items, then the summary across tasks."""
    import matplotlib.image

    result = run_cli("-m", "experiment=smoke", "model=bert,modernbert", "data=synthetic,topics", "seed=0,1",
                     "data.num_examples=600", "trainer.epochs=1", "logger.mode=disabled",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = tmp_path / "sweep" / "comparison"
    summary = json.loads((report / "comparison.json").read_text())
    assert [t["name"] for t in summary["tasks"]] == ["synthetic", "topics"]
    for task in summary["tasks"]:
        (h,) = task["head_to_heads"]
        assert {h["encoder_a"], h["encoder_b"]} == {"BERT", "ModernBERT"} and h["evidence"] == "seeds"
        assert h["items"]["test_items"] == 60 and h["verdict"] in ("better", "equivalent", "inconclusive")
        assert f"=== task {task['name']}: 4 runs ===" in result.stdout and h["sentence"] in result.stdout
        assert all(len(curve) == 2 for curve in task["budget"].values())
        runs = [json.loads((tmp_path / "sweep" / run.split("/")[-1] / "metrics.json").read_text())
                for run in task["runs"]]
        assert {m["data"]["name"] for m in runs} == {task["name"]}
    assert summary["across_tasks"]["sentence"].startswith("Across 2 tasks ")
    assert summary["across_tasks"]["sentence"] in result.stdout
    assert matplotlib.image.imread(report / "budget.png").shape[1] > 100


def test_a_smaller_encoder_is_reported_faster_and_named_by_the_recommendation(tmp_path):
    """Two widths of one family on one machine, three seeds each: the narrow one trains and classifies faster, by
    ratios and intervals that the runs' own metrics.json give, and the recommendation says so."""
    import math

    from scipy import stats

    result = run_cli("-m", "experiment=smoke", "data.num_examples=600", "trainer.epochs=1", "model=bert",
                     "model.scratch.hidden_size=16,256", "seed=0,1,2", "logger.mode=disabled",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    task = json.loads((tmp_path / "sweep" / "comparison" / "comparison.json").read_text())["tasks"][0]
    speed = {16: {}, 256: {}}
    for run in task["runs"]:
        metrics = json.loads((Path(run) / "metrics.json").read_text())
        width = 16 if "hidden_size=16" in run else 256
        seed = next(o for o in metrics["overrides"] if o.startswith("seed="))
        speed[width][seed] = metrics["train"]["tokens_per_s"]
        assert metrics["hardware"]["shared_with"] >= 1
    train = next(c for c in task["cost"] if c["measure"] == "train_tokens_per_s")
    small, big = "BERT scratch 2x16", "BERT scratch 2x256"
    assert {train["encoder_a"], train["encoder_b"]} == {small, big} and train["compared"]
    logs = np.array([math.log(speed[256][s]) - math.log(speed[16][s]) for s in sorted(speed[16])])
    half = stats.t.ppf(0.975, 2) * logs.std(ddof=1) / math.sqrt(3)
    flip = 1 if train["encoder_b"] == big else -1  # the ratio is b over a
    assert train["ratio"] == pytest.approx(math.exp(flip * logs.mean()))
    assert sorted([train["low"], train["high"]]) == pytest.approx(
        sorted([math.exp(flip * (logs.mean() - half)), math.exp(flip * (logs.mean() + half))]))
    assert math.exp(logs.mean()) < 1  # the wide one is slower
    assert f"{small} trains " in task["recommendation"] and task["recommendation"] in result.stdout
    assert task["budget_compute"][small][-1]["hours"] < task["budget_compute"][big][-1]["hours"]
    assert (tmp_path / "sweep" / "comparison" / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_a_wandb_key_without_a_server(tmp_path):
    """A compute node without internet and the user's key in the environment: the default logger.mode=auto goes
    offline at once and the run completes; logger.mode=online stops before any data loads, in one line."""
    env = {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": closed_port(), "WANDB_MODE": None}
    quick = ["experiment=smoke", "data.num_examples=500", "trainer.epochs=1"]
    result = run_cli(*quick, f"hydra.run.dir={tmp_path / 'auto'}", cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "did not answer within 5 s: logging offline; upload it later with " \
           f"`wandb sync {tmp_path / 'auto'}/wandb`" in output
    assert json.loads((tmp_path / "auto" / "metrics.json").read_text())["status"] == "completed"
    assert len(list((tmp_path / "auto" / "wandb").glob("offline-run-*/run-*.wandb"))) == 1

    result = run_cli(*quick, "logger.mode=online", f"hydra.run.dir={tmp_path / 'online'}", cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert "logger.mode=online but the W&B server http://127.0.0.1:" in output
    assert "tokenizing" not in output and "cache hit" not in output  # stopped before the data


def test_two_sweeps_in_one_directory_train_each_run_once(tmp_path):
    args = [sys.executable, "-m", "bertcmp", "-m", "experiment=smoke", "model=bert,modernbert",
            "data.num_examples=1000", "trainer.epochs=1", "logger.mode=disabled", f"hydra.sweep.dir={tmp_path / 'x'}"]
    sweeps = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"}) for _ in range(2)]
    outputs = [sweep.communicate(timeout=600)[0] for sweep in sweeps]
    both = "".join(outputs)
    assert both.count("epoch 1/1") == 2, both  # each of the two runs trained by one process only
    assert "Traceback" not in both
    for model in ("bert", "modernbert"):
        [run] = (tmp_path / "x").glob(f"*,model={model},*")
        assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    skipped = both.count("is running it (another sweep in the same directory); this one leaves it be") + \
        both.count("completed earlier with this config")
    assert skipped == 2  # and the other process skipped it
