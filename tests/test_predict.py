"""Using a trained run: bertcmp.predict and load_classifier give the run's own probabilities for its test texts,
in input order, for two classes, four classes and pairs; and a run without a usable checkpoint is one line."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from bertcmp import load_classifier
from bertcmp.app import Job, run_job
from bertcmp.data import column, load_splits
from bertcmp.errors import DataError, ModelError
from bertcmp.predict import main
from test_app import TINY, make_cfg, write_pairs


def trained(directory, *overrides: str):
    cfg = make_cfg(*TINY, *overrides)
    job = Job.create(cfg, directory, overrides)
    job.dir.mkdir(parents=True)
    run_job(cfg, job)
    return cfg, job.dir


@pytest.fixture(scope="module")
def topics_run(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("topics") / "run", "data=topics", "data.padding=dynamic")


def recorded_probs(run_dir) -> dict[int, list[float]]:
    with open(run_dir / "test_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in rows[0] if c.startswith("prob_")]
    return {int(r["index"]): [float(r[c]) for c in columns] for r in rows}


def test_predict_reproduces_a_runs_test_probabilities(topics_run):
    cfg, run_dir = topics_run
    test = load_splits(cfg.data)["test"]
    texts = column(test, "text")[::-1]  # any order: the answers come back in the order asked
    result = load_classifier(run_dir, "cpu").predict(texts, batch_size=7)
    expected = recorded_probs(run_dir)
    np.testing.assert_allclose(result.probs, [expected[i] for i in column(test, "index")[::-1]], atol=2e-6)
    assert result.labels == [result.classes[i] for i in result.probs.argmax(-1)]
    assert result.classes == ["business", "science", "sports", "world"]


def test_predict_cli_writes_the_runs_columns(topics_run, tmp_path, capsys):
    _, run_dir = topics_run
    source = tmp_path / "texts.csv"
    source.write_text("id,body\n1,the striker set a record.\n2,\"the vaccine, the telescope and the genome.\"\n")
    out = tmp_path / "predictions.csv"
    assert main([str(run_dir), "--file", str(source), "--text-column", "body", "--out", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["pred", "prob_business", "prob_science", "prob_sports", "prob_world"] and len(rows) == 2
    assert main([str(run_dir), "--text", "the striker set a record.", "--text", "the genome."]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 + 1 + 2  # the "written" line, then the table's header and two rows
    assert printed[1].split() == ["text", "pred", "prob_business", "prob_science", "prob_sports", "prob_world"]
    assert printed[2].split()[-5:] == [rows[0]["pred"], *(rows[0][c] for c in list(rows[0])[1:])]


def test_two_classes_give_prob_pos_as_the_run_wrote(tmp_path):
    cfg, run_dir = trained(tmp_path / "run", "model=modernbert", "model.head=native")
    test = load_splits(cfg.data)["test"]
    result = load_classifier(run_dir / "checkpoint").predict(column(test, "text"))  # the checkpoint alone will do
    expected = recorded_probs(run_dir)
    assert result.rows()[0][1] == f"{result.probs[0, 1]:.6f}" and len(result.rows()[0]) == 2
    assert result.probs[:, 1].tolist() == pytest.approx([expected[i][0] for i in column(test, "index")], abs=2e-6)


def test_pairs_are_tokenized_as_the_run_did(tmp_path):
    source = write_pairs(tmp_path / "pairs.jsonl")
    cfg, run_dir = trained(tmp_path / "run", "data=imdb", f"data.source={source}", "data.name=pairs",
                           "data.text_column=sentence1", "data.text_pair_column=sentence2", "data.max_length=40")
    test = load_splits(cfg.data)["test"]
    classifier = load_classifier(run_dir)
    result = classifier.predict(column(test, "text"), column(test, "text_pair"))
    expected = recorded_probs(run_dir)
    assert result.probs[:, 1].tolist() == pytest.approx([expected[i][0] for i in column(test, "index")], abs=2e-6)
    with pytest.raises(DataError, match="this model classifies pairs of texts"):
        classifier.predict(["one text alone"])


def test_a_run_without_a_usable_checkpoint_is_one_line(tmp_path, capsys):
    _, no_checkpoint = trained(tmp_path / "none", "trainer.save_checkpoint=none", "trainer.epochs=1")
    with pytest.raises(ModelError, match="ran with trainer.save_checkpoint=none; run it again with "
                                         "trainer.save_checkpoint=best"):
        load_classifier(no_checkpoint)
    running = tmp_path / "running"
    running.mkdir()
    (running / "metrics.json").write_text(json.dumps({"status": "running"}))
    assert main([str(running), "--text", "a film"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (f"error: {running} has not completed (status: running); only a completed run's checkpoint "
                           "holds its best model: finish it by running the same command again")
    assert main([str(tmp_path / "nowhere"), "--text", "a film"]) == 1
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_from_the_command_line(topics_run, tmp_path):
    _, run_dir = topics_run
    result = subprocess.run([sys.executable, "-m", "bertcmp.predict", str(run_dir), "--text", "the final was won."],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    row = result.stdout.splitlines()[1].split()
    assert row[-5] in ("business", "science", "sports", "world")
    assert np.isclose(sum(float(x) for x in row[-4:]), 1, atol=1e-5)


def test_a_single_string_is_one_text(topics_run):
    _, run_dir = topics_run
    classifier = load_classifier(run_dir, "cpu")
    one = classifier.predict("the striker set a record.")
    assert len(one.labels) == 1 and one.probs.shape == (1, 4)
    np.testing.assert_allclose(one.probs, classifier.predict(["the striker set a record."]).probs)


@pytest.mark.parametrize("spelling", ["same", "link", "hard link", "relative"])
def test_out_that_is_the_input_file_is_refused(topics_run, tmp_path, capsys, monkeypatch, spelling):
    import os

    _, run_dir = topics_run
    source = tmp_path / "texts.csv"
    source.write_text("text\nthe striker set a record.\n")
    out = {"same": source, "link": tmp_path / "link.csv", "hard link": tmp_path / "hard.csv",
           "relative": "texts.csv"}[spelling]
    if spelling == "link":
        out.symlink_to(source)
    elif spelling == "hard link":
        os.link(source, out)
    monkeypatch.chdir(tmp_path)
    assert main([str(run_dir), "--file", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --out {out} is the input file {source}: the predictions would overwrite it; give --out "
                   "another path\n")
    assert source.read_text() == "text\nthe striker set a record.\n"  # the user's file is untouched


@pytest.mark.parametrize("args, message", [
    (["--text", "a film.", "--pair-column", "b"],
     "error: --pair-column='b': this model classifies single texts, not pairs; leave --pair-column out"),
    (["--text", "a film.", "--text-column", "body"],
     "error: --text-column='body' names a column of --file, but the texts come from --text; leave --text-column out"),
    (["--file", "{txt}", "--text-column", "body"],
     "error: --text-column='body': --file {txt} is a .txt file, one text per line and no columns; leave "
     "--text-column out, or give a csv / jsonl / parquet file"),
])
def test_options_that_would_be_ignored_are_refused(topics_run, tmp_path, capsys, args, message):
    _, run_dir = topics_run
    txt = tmp_path / "texts.txt"
    txt.write_text("the striker set a record.\n")
    out = tmp_path / "predictions.csv"
    argv = [str(run_dir), *(a.format(txt=txt) for a in args), "--out", str(out)]
    assert main(argv) == 1
    assert capsys.readouterr().err == message.format(txt=txt) + "\n"
    assert not out.exists()


def test_the_screen_table_names_classes_and_keeps_one_line_per_text(capsys):
    from bertcmp.predict import Prediction, print_table

    binary = Prediction(["1", "2"], np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]]))
    print_table(["a dull film.", "a great film."], binary)
    printed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert printed == [["text", "pred", "prob_pos"], ["a", "dull", "film.", "1", "0.200000"],
                       ["a", "great", "film.", "2", "0.700000"]]  # the class named 1, not the id 1
    odd = Prediction(["sports\nnews", "science", "world"], np.array([0]), np.array([[0.5, 0.3, 0.2]]))
    print_table(["the striker set a record."], odd)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and printed[1].split()[-4:] == ["sports\\nnews", "0.500000", "0.300000", "0.200000"]
    assert "prob_sports\\nnews" in printed[0]
