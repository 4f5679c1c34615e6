"""W&B mode choice: online only with the user's own credentials and a server that answers; the key is never
read into bertcmp; tracking trouble never fails a run."""

import http.server
import logging
import os
import socket
import sys
import threading
import time
import types

import pytest

from bertcmp import tracking
from bertcmp.errors import TrackingError
from bertcmp.tracking import Choice, Tracker, choose_mode, has_wandb_credentials, server_answers, start_run
from conftest import closed_port


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))  # no `wandb login --host` of the user's
    return tmp_path / "netrc"


@pytest.fixture
def server_up(monkeypatch):
    monkeypatch.setattr(tracking, "server_answers", lambda: True)


@pytest.fixture
def server_down(clean_env, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", closed_port())


def test_explicit_modes_are_kept(clean_env, server_up):
    for mode in ("online", "offline", "disabled"):
        assert choose_mode(mode).mode == mode


def test_auto_is_offline_without_credentials(clean_env):
    assert not has_wandb_credentials()
    assert choose_mode("auto") == Choice("offline")


def test_auto_is_online_with_a_key_in_the_environment(clean_env, server_up, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert choose_mode("auto") == Choice("online", fallback=True)


def test_auto_is_online_after_wandb_login(clean_env, server_up):
    clean_env.write_text(f"machine {tracking.server_url().split('//')[1]}\n  login user\n  password {'0' * 40}\n")
    clean_env.chmod(0o600)
    assert choose_mode("auto").mode == "online"


def test_auto_follows_wandb_mode(clean_env, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert choose_mode("auto") == Choice("disabled")


def test_the_server_check_is_bounded():
    assert not server_answers(closed_port(), seconds=5)  # refused
    with socket.socket() as silent:  # accepts connections (the kernel does) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        assert not server_answers(f"http://127.0.0.1:{silent.getsockname()[1]}", seconds=0.5)
        assert time.monotonic() - started < 3

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:  # an error status is still an answer: the server is there
        assert server_answers(f"http://127.0.0.1:{server.server_port}", seconds=5)
    finally:
        server.shutdown()


def test_auto_with_a_key_but_no_server_goes_offline_with_one_line(server_down, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert choose_mode("auto", tmp_path / "run") == Choice("offline")
    assert "did not answer within 5 s: logging offline" in caplog.text
    assert f"wandb sync {tmp_path / 'run'}/wandb" in caplog.text


@pytest.mark.parametrize("asked", ["logger", "environment"])
def test_online_without_a_server_is_an_error_at_once(server_down, monkeypatch, asked):
    if asked == "environment":
        monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.raises(TrackingError, match="logger.mode=online but the W&B server http://127.0.0.1:"):
        choose_mode("online" if asked == "logger" else "auto")


class BrokenRun:
    """A W&B run whose server went away after it started."""
    id = "abc123"
    summary: dict = {}

    def __init__(self):
        self.calls = 0

    def log(self, *args, **kwargs):
        self.calls += 1
        raise ConnectionError("the server went away\nmore detail")

    def finish(self, exit_code=0):
        self.calls += 1
        raise ConnectionError("still away")


def test_tracking_trouble_during_a_run_is_one_warning(caplog):
    run = BrokenRun()
    tracker = Tracker(run)
    with caplog.at_level(logging.WARNING):
        tracker.log_step(1, 0.5, 1e-3)
        tracker.log_epoch(2, {"valid/accuracy": 0.9})
        tracker.summarise({"test/accuracy": 0.9})
        tracker.finish()
    assert run.calls == 1 and tracker.run_id == "abc123"
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["W&B stopped working (ConnectionError: the server went away); training goes on without "
                        "tracking"]


@pytest.mark.parametrize("choice, outcome", [(Choice("online", fallback=True), "offline"),
                                             (Choice("online"), "error")])
def test_a_run_that_cannot_start_online(monkeypatch, tmp_path, caplog, choice, outcome):
    from omegaconf import OmegaConf

    modes = []

    class Run:
        id = "r1"

        def define_metric(self, *args, **kwargs):
            pass

    def init(mode, **kwargs):
        modes.append(mode)
        if mode == "online":
            raise RuntimeError("Timed out while retrying: no such host")
        return Run()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init, Settings=lambda **kwargs: kwargs))
    cfg = OmegaConf.create({"project": "p", "entity": None, "group": None, "tags": []})
    if outcome == "error":
        with pytest.raises(TrackingError, match=r"W&B could not start a run in online mode \(RuntimeError: Timed"):
            start_run(cfg, choice, {}, "bert", None, tmp_path)
        assert modes == ["online"]
    else:
        assert start_run(cfg, choice, {}, "bert", None, tmp_path).run_id == "r1"
        assert modes == ["online", "offline"] and f"`wandb sync {tmp_path}/wandb`" in caplog.text


def test_online_sweep_comparison_logs_the_summary_table(monkeypatch, tmp_path):
    """No W&B server is reachable here: a stand-in wandb module records what would be sent."""
    import sys
    import types

    from omegaconf import OmegaConf

    from bertcmp.compare import TABLE, table_records
    from bertcmp.tracking import log_comparison

    sent = {}

    class FakeRun:
        summary: dict = {}

        def log(self, data):
            sent.update(data)

        def finish(self):
            sent["finished"] = True

    fake = types.SimpleNamespace(init=lambda **kw: sent.update(init=kw) or FakeRun(),
                                 Table=lambda columns, data: ("table", columns, data),
                                 Image=lambda path: ("image", path))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    row = {"task": "imdb", "encoder": "BERT", "configuration": "model=bert", "model": "bert", "runs": 2,
           "seeds": [0, 1], "lr": 5e-5}
    for _, key, _ in TABLE[2:]:
        row[key], row[f"{key}_std"] = 0.5, 0.01
    files = [tmp_path / "learning_curves.png", tmp_path / "summary.csv"]
    cfg = OmegaConf.create({"mode": "online", "project": "p", "entity": None, "group": None})
    monkeypatch.setattr(tracking, "server_answers", lambda: True)
    log_comparison(cfg, "2026-11-26_10-00-00", table_records([row]), None, files, "Pick BERT: it is better.")
    assert sent["init"]["job_type"] == "compare" and sent["init"]["group"] == "2026-11-26_10-00-00"
    assert FakeRun.summary == {"recommendation": "Pick BERT: it is better."}
    assert sent["comparison/summary"] == ("table", *table_records([row]))
    assert sent["comparison/learning_curves"] == ("image", str(tmp_path / "learning_curves.png"))
    assert set(sent) == {"init", "comparison/summary", "comparison/learning_curves", "finished"}  # PNGs only

    sent.clear()
    log_comparison(OmegaConf.create({"mode": "offline"}), "g", table_records([row]), None, files)
    assert sent == {}  # offline: nothing is sent


def test_a_sweep_is_grouped_by_its_date_and_time():
    from bertcmp.tracking import sweep_group

    assert sweep_group("outputs/multirun/2026-11-26/10-00-00") == "2026-11-26_10-00-00"


def test_a_runs_wandb_console_is_one_line_saying_where_the_run_is(tmp_path, capfd, caplog):
    """W&B's own history and summary (about 34 lines a run) stay off a sweep's screen; bertcmp says where the
    run is, with the command that uploads it."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"project": "p", "entity": None, "group": None, "tags": []})
    with caplog.at_level(logging.INFO, logger="bertcmp.tracking"):
        tracker = start_run(cfg, Choice("offline"), {"lr": 1e-5}, "bert", None, tmp_path)
        for epoch in (1, 2):
            tracker.log_epoch(step=epoch, metrics={"epoch": epoch, "valid/accuracy": 0.5 + epoch / 10})
        tracker.summarise({"test/accuracy": 0.7})
        tracker.finish()
    printed = capfd.readouterr()
    assert "wandb:" not in printed.out + printed.err
    assert "W&B run saved offline; upload it with `wandb sync " in caplog.text and str(tmp_path) in caplog.text


def test_a_disabled_run_says_nothing_about_where_it_is(tmp_path, caplog):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"project": "p", "entity": None, "group": None, "tags": []})
    with caplog.at_level(logging.INFO, logger="bertcmp.tracking"):
        tracker = start_run(cfg, Choice("disabled"), {"lr": 1e-5}, "bert", None, tmp_path)
        tracker.finish()
    assert "W&B run:" not in caplog.text and "wandb sync" not in caplog.text


@pytest.mark.parametrize("mode", ["disabled", "offline"])
def test_an_empty_wandb_variable_is_taken_as_unset(tmp_path, monkeypatch, mode):
    """`export WANDB_SILENT=` left an empty variable, which wandb's settings reject: every run failed to start,
    disabled ones too (wandb's own bug; bertcmp keeps it from reaching wandb)."""
    from omegaconf import OmegaConf

    monkeypatch.setenv("WANDB_SILENT", "")
    monkeypatch.setenv("WANDB_NOTES", " ")
    cfg = OmegaConf.create({"project": "p", "entity": None, "group": None, "tags": []})
    tracker = start_run(cfg, Choice(mode), {"lr": 1e-5}, "bert", None, tmp_path)
    tracker.finish()
    assert "WANDB_SILENT" not in os.environ and "WANDB_NOTES" not in os.environ
