"""Using a trained run: bertcmp.predict and load_classifier give the run's own probabilities for its test texts,
in input order, for two classes, four classes and pairs; and a run without a usable checkpoint is one line."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from bertcmp import load_classifier, outputs
from bertcmp.app import Job, run_job
from bertcmp.data import column, load_splits
from bertcmp.errors import ConfigError, DataError, ModelError
from bertcmp.predict import main
from test_app import TINY, make_cfg, write_pairs


def trained(directory, *overrides: str):
    cfg = make_cfg(*TINY, *overrides)
    job = Job.create(cfg, directory, overrides)
    job.dir.mkdir(parents=True, exist_ok=True)
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
    # the input's own columns first (the id lines the rows up), then the run's
    assert list(rows[0]) == ["id", "body", "pred", "prob_business", "prob_science", "prob_sports", "prob_world"]
    assert [r["id"] for r in rows] == ["1", "2"] and rows[1]["body"] == "the vaccine, the telescope and the genome."
    assert main([str(run_dir), "--text", "the striker set a record.", "--text", "the genome."]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 + 1 + 2  # the "written" line, then the table's header and two rows
    assert printed[1].split() == ["text", "pred", "prob_business", "prob_science", "prob_sports", "prob_world"]
    assert printed[2].split()[-5:] == [rows[0]["pred"], *(rows[0][c] for c in list(rows[0])[3:])]


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
    assert err.strip() == (f"error: {running} stopped before it completed (killed, or its disk filled up): only a "
                           "completed run's checkpoint holds its best model; run the same command again to complete it")
    with outputs.holding(running):  # a live process runs it
        assert main([str(running), "--text", "a film"]) == 1
    assert capsys.readouterr().err.strip() == (f"error: {running} is still training: its checkpoint is the best "
                                               "model once it completes; wait for it, then predict")
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
    (["--text", "a film.", "--keep-columns", "id"],
     "error: --keep-columns='id' names a column of --file, but the texts come from --text; leave --keep-columns out"),
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


def test_a_stale_checkpoint_never_answers_for_a_new_run(topics_run, tmp_path, capsys):
    import shutil

    _, topics_dir = topics_run
    run_dir = tmp_path / "run"
    shutil.copytree(topics_dir / "checkpoint", run_dir / "checkpoint")  # what the 4-class run left here
    shutil.copy(topics_dir / "metrics.json", run_dir / "metrics.json")
    _, run_dir = trained(run_dir, "trainer.save_checkpoint=none", "trainer.epochs=1")  # now a 2-class run
    assert json.loads((run_dir / "metrics.json").read_text())["classes"] == ["0", "1"]
    assert not (run_dir / "checkpoint").exists()  # the completed run left no checkpoint of another computation
    # a checkpoint that is there anyway (copied back, or left by bertcmp 0.3) is refused: by its key, or by its classes
    shutil.copytree(topics_dir / "checkpoint", run_dir / "checkpoint")
    for old in (False, True):
        if old:
            settings = json.loads((run_dir / "checkpoint" / "bertcmp.json").read_text())
            del settings["computation_key"]
            (run_dir / "checkpoint" / "bertcmp.json").write_text(json.dumps(settings))
        for path in (run_dir, run_dir / "checkpoint"):
            assert main([str(path), "--text", "a great film"]) == 1
            err = capsys.readouterr().err
            assert err.startswith(f"error: {run_dir / 'checkpoint'} was saved by an earlier run of another config "
                                  "(classes business, science, sports, world), not by the run that completed in "
                                  f"{run_dir} (classes 0, 1)"), err


def test_every_input_row_gives_one_output_row_in_order(topics_run, tmp_path, caplog):
    _, run_dir = topics_run
    txt = tmp_path / "texts.txt"
    txt.write_text("the striker set a record.\n\nthe genome.\n   \nthe final was won.\n\n")
    out = tmp_path / "predictions.csv"
    assert main([str(run_dir), "--file", str(txt), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open(newline="")))
    assert [(r["line"], r["text"]) for r in rows] == [("1", "the striker set a record."), ("2", ""),
                                                     ("3", "the genome."), ("4", "   "), ("5", "the final was won."),
                                                     ("6", "")]
    assert "3 blank text(s) (the first at line 2) classified as the empty text" in caplog.text
    table = tmp_path / "texts.csv"
    table.write_text("id,body,note\n7,the striker set a record.,a\n3,   ,\n9,,c\n1,the genome.,d\n")
    assert main([str(run_dir), "--file", str(table), "--text-column", "body", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open(newline="")))
    assert [r["id"] for r in rows] == ["7", "3", "9", "1"] and [r["note"] for r in rows] == ["a", "", "c", "d"]
    blank = load_classifier(run_dir, "cpu").predict([""]).probs[0]
    assert [float(rows[2][c]) for c in list(rows[2])[4:]] == pytest.approx(blank, abs=1e-6)
    assert main([str(run_dir), "--file", str(table), "--text-column", "body", "--keep-columns", "id",
                 "--out", str(out)]) == 0
    assert list(next(csv.DictReader(out.open(newline="")))) == ["id", "pred", *(f"prob_{c}" for c in
                                                                               ("business", "science", "sports",
                                                                                "world"))]


def test_files_are_read_as_they_hold_their_values(tmp_path):
    from bertcmp.predict import read_inputs

    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text('{"id": 1, "text": "the striker"}\n{"id": "b", "text": 5}\n{"id": 3, "text": "NA"}\n')
    inputs = read_inputs(jsonl, "text", None)
    assert inputs.texts == ["the striker", "5", "NA"] and inputs.carried["id"] == [1, "b", 3]
    table = tmp_path / "texts.csv"
    table.write_text("text\nNA\nNone\nnull\n007\n")
    assert read_inputs(table, "text", None).texts == ["NA", "None", "null", "007"]


def damage(checkpoint, how):
    settings = checkpoint / "bertcmp.json"
    if how == "empty settings":
        settings.write_text("{}")
    elif how == "no head":
        data = json.loads(settings.read_text())
        del data["head"]
        settings.write_text(json.dumps(data))
    elif how == "not json":
        settings.write_text('{"classes": ["a", ')
    elif how == "other classes":
        data = json.loads(settings.read_text())
        data["classes"] = ["a", "b", "c"]
        settings.write_text(json.dumps(data))
    elif how == "truncated weights":
        weights = checkpoint / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    elif how == "damaged tokenizer":
        (checkpoint / "tokenizer.json").write_text("{not json")


@pytest.mark.parametrize("how, message", [
    ("empty settings", "{ckpt}/bertcmp.json is damaged: it lacks classes, head, pooling, max_length, truncation, "
                       "head_tokens, text_column; train the run again, or restore the file"),
    ("no head", "{ckpt}/bertcmp.json is damaged: it lacks head; train the run again, or restore the file"),
    ("not json", "{ckpt}/bertcmp.json is damaged (JSONDecodeError: "),
    ("other classes", "{ckpt}: bertcmp.json names 3 classes but the weights give 4; the checkpoint's files come "
                      "from different runs: train the run again"),
    ("truncated weights", "{ckpt}: its weights could not be loaded ("),
    ("damaged tokenizer", "{ckpt}: its tokenizer files could not be read ("),
])
def test_a_damaged_checkpoint_is_one_line_naming_its_file(topics_run, tmp_path, capsys, how, message):
    import shutil

    _, run_dir = topics_run
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(run_dir / "checkpoint", checkpoint)
    damage(checkpoint, how)
    assert main([str(checkpoint), "--text", "a film"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: " + message.format(ckpt=checkpoint)) and err.count("\n") == 1, err


@pytest.mark.parametrize("args, message, code", [
    (["--batch-size", "0"], "argument --batch-size: '0': give a whole number of texts, 1 or more", 2),
    (["--batch-size", "-1"], "argument --batch-size: '-1': give a whole number of texts, 1 or more", 2),
    (["--out", "{tmp}/no/such/dir/p.csv"], "--out {tmp}/no/such/dir/p.csv: the directory {tmp}/no/such/dir does "
                                          "not exist; create it, or give another path", 2),
    (["--out", "{tmp}"], "--out {tmp} is a directory: give a file in it, e.g. {tmp}/predictions.csv", 2),
    (["--device", "bogus"], "device=bogus is not a device: use cpu, cuda or cuda:N", 1),
    (["--device", "cuda:99"], "device=cuda:99 but this machine has ", 1),
    (["--file", "{tmp}/latin1.txt"], "--file {tmp}/latin1.txt is not UTF-8 text (byte 0xe9 at offset 5); save it "
                                     "as UTF-8", 1),
])
def test_bad_predict_options_are_one_line(topics_run, tmp_path, capsys, args, message, code):
    _, run_dir = topics_run
    (tmp_path / "latin1.txt").write_bytes("a caf\u00e9 film".encode("latin-1"))
    argv = [str(run_dir), *(a.format(tmp=tmp_path) for a in args)]
    if "--file" not in args:
        argv += ["--text", "a film"]
    if code == 2 and "--out" not in args:
        with pytest.raises(SystemExit) as exit_:  # argparse's own usage error
            main(argv)
        assert exit_.value.code == 2
    else:
        assert main(argv) == code
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "Traceback" not in err


def test_predictions_in_bf16_agree_with_fp32(topics_run, monkeypatch):
    import torch

    from bertcmp import predict

    cfg, run_dir = topics_run
    texts = column(load_splits(cfg.data)["test"], "text")
    fp32 = load_classifier(run_dir, "cpu", "fp32")
    bf16 = load_classifier(run_dir, "cpu", "bf16")
    assert (fp32.dtype, bf16.dtype, bf16.precision) == (None, torch.bfloat16, "bf16")
    a, b = fp32.predict(texts), bf16.predict(texts)
    assert np.abs(a.probs - b.probs).max() < 0.02 and not np.array_equal(a.probs, b.probs)
    sure = np.sort(a.probs, 1)[:, -1] - np.sort(a.probs, 1)[:, -2] > 0.02  # labels agree wherever fp32 is not a tie
    assert (a.preds[sure] == b.preds[sure]).all()
    # auto: the run's own precision (this one trained in fp32), a half one only where the device has it natively
    assert load_classifier(run_dir, "cpu").dtype is None
    settings = {"precision": "bfloat16"}
    monkeypatch.setattr(predict, "in_hardware", lambda dtype, device: False)
    assert predict.inference_dtype("auto", settings, torch.device("cpu")) is None
    monkeypatch.setattr(predict, "in_hardware", lambda dtype, device: True)
    assert predict.inference_dtype("auto", settings, torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ConfigError, match="precision fp16 needs a CUDA device"):
        predict.inference_dtype("fp16", settings, torch.device("cpu"))
