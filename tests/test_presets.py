"""The data presets (conf/data/<task>.yaml): each names its set's real Hub id, configuration, columns and splits,
and loads end to end from a copy of that set's repository in its real layout (tests/hub_fixtures.py)."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bertcmp.app import CONFIG_DIR
from bertcmp.config import validate
from bertcmp.data import classes, load_splits
from conftest import compose_config
from hub_fixtures import REPOS, write

GENERATED = {"synthetic", "topics"}  # made by bertcmp itself, not read from a source
PRESETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "data").glob("*.yaml") if p.stem not in GENERATED)
ROWS = 60


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hub")


def test_every_preset_has_its_repository_and_back():
    assert set(PRESETS) == set(REPOS)
    assert len(PRESETS) == 13


@pytest.mark.parametrize("name", PRESETS)
def test_the_preset_names_its_sets_hub_id_and_columns(name):
    repo, data = REPOS[name], compose_config(f"data={name}").data
    assert data.name == name and data.source == repo.hub_id
    assert (data.text_column, data.text_pair_column) == (repo.texts + (None,))[:2]
    assert data.label_column == repo.label
    if repo.hub_id == "nyu-mll/glue":  # hidden test labels: the official validation split scores, as in the papers
        assert data.config == name and data.split == "official" and data.test_split.startswith("validation")


@pytest.mark.parametrize("name", PRESETS)
def test_the_preset_loads_from_its_repository_layout(name, fixtures):
    repo = REPOS[name]
    source = write(name, fixtures, ROWS)
    cfg = compose_config(f"data={name}", f"data.source={source}")
    if cfg.data.valid_size >= 1:  # a count for the real set (mnli: 5,000) is more than these copies hold
        cfg.data.valid_size = 0.1
    validate(cfg)
    splits = load_splits(cfg.data)
    assert classes(splits) == (list(repo.classes) if repo.classes else ["false", "true"])
    labelled = [s for s in repo.files if s.split(":")[0] not in repo.configs or s.startswith(f"{cfg.data.config}:")]
    if cfg.data.split == "official":  # the set's own test split (GLUE: its validation split) scores
        assert len(splits["test"]) == ROWS and all(f" {cfg.data.test_split} " in t for t in splits["test"]["text"])
    else:  # pooled, as the reference IMDB study: every labelled row is in one of the three
        assert sum(len(splits[s]) for s in ("train", "valid", "test")) == ROWS * (len(labelled) - len(repo.hidden))
    assert len(splits["valid"]) > 0 and len(splits["train"]) > 0
    assert ("text_pair" in splits["train"].column_names) == (len(repo.texts) == 2)
    used = [t for s in ("train", "valid", "test") for t in splits[s]["text"]]
    for hidden in repo.hidden:  # GLUE's test splits, IMDB's unsupervised: never trained or scored on
        assert not any(f" {hidden} " in t for t in used)


def test_mnli_scores_on_the_mismatched_genres_when_asked(fixtures):
    source = write("mnli", fixtures, ROWS)
    cfg = compose_config("data=mnli", f"data.source={source}", "data.test_split=validation_mismatched",
                         "data.valid_size=0.1")
    splits = load_splits(cfg.data)
    assert all(" validation_mismatched " in t for t in splits["test"]["text"])
    assert classes(splits) == ["entailment", "neutral", "contradiction"]


def test_the_usual_metrics():
    metrics = {name: str(compose_config(f"data={name}").data.metric) for name in PRESETS}
    assert {name: m for name, m in metrics.items() if m != "accuracy"} == {"cola": "mcc", "mrpc": "f1", "qqp": "f1"}


def test_presets_and_the_benchmark_name_the_same_tasks():
    for experiment in ("benchmark", "benchmark_smoke"):
        cfg = compose_config(f"experiment={experiment}", hydra=True)
        assert sorted(OmegaConf.to_container(cfg.hydra.sweeper.params)["data"].split(",")) == PRESETS


@pytest.mark.slow
def test_the_benchmark_smoke_suite_runs_every_task_and_compares_them(tmp_path):
    """experiment=benchmark_smoke as a user runs it, on copies made by `python -m tests.hub_fixtures`."""
    import json
    import subprocess
    import sys

    from conftest import REPO, run_cli

    made = subprocess.run([sys.executable, "-m", "tests.hub_fixtures", str(tmp_path / "fixtures")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    sweep = tmp_path / "sweep"
    done = run_cli("-m", "experiment=benchmark_smoke", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
                   env={"BERTCMP_FIXTURES": str(tmp_path / "fixtures")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")]
    assert len(runs) == 2 * len(PRESETS) and {r["status"] for r in runs} == {"completed"}
    expected = {name: str(compose_config(f"data={name}").data.metric) for name in PRESETS}
    assert {(r["data"]["name"], r["metric"]) for r in runs} == set(expected.items())
    printed = done.stdout
    order = compose_config("experiment=benchmark_smoke", hydra=True).hydra.sweeper.params["data"].split(",")
    sections = [line.split()[2].rstrip(":") for line in printed.splitlines() if line.startswith("=== task ")]
    assert sections == order  # one section per task, in the sweep's order
    assert "=== across tasks ===" in printed and "Across 13 tasks" in printed
    assert "report failed" not in printed and "warning" not in done.stderr.lower()
    assert (sweep / "comparison" / "report.md").is_file()
