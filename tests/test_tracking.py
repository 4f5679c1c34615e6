"""W&B mode choice: online only with the user's own credentials; the key is never read into bertcmp."""

import pytest

from bertcmp.tracking import has_wandb_credentials, resolve_mode


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_explicit_modes_are_kept(clean_env):
    for mode in ("online", "offline", "disabled"):
        assert resolve_mode(mode) == mode


def test_auto_is_offline_without_credentials(clean_env):
    assert not has_wandb_credentials()
    assert resolve_mode("auto") == "offline"


def test_auto_is_online_with_a_key_in_the_environment(clean_env, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"


def test_auto_is_online_after_wandb_login(clean_env):
    clean_env.write_text("machine api.wandb.ai\n  login user\n  password " + "0" * 40 + "\n")
    clean_env.chmod(0o600)
    assert resolve_mode("auto") == "online"


def test_auto_follows_wandb_mode(clean_env, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled"


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
    row = {"configuration": "model=bert", "model": "bert", "runs": 2, "seeds": [0, 1], "lr": 5e-5}
    for _, key, _ in TABLE[2:]:
        row[key], row[f"{key}_std"] = 0.5, 0.01
    files = [tmp_path / "learning_curves.png", tmp_path / "summary.csv"]
    cfg = OmegaConf.create({"mode": "online", "project": "p", "entity": None, "group": None})
    log_comparison(cfg, "2026-11-26_10-00-00", table_records([row]), None, files)
    assert sent["init"]["job_type"] == "compare" and sent["init"]["group"] == "2026-11-26_10-00-00"
    assert sent["comparison/summary"] == ("table", *table_records([row]))
    assert sent["comparison/learning_curves"] == ("image", str(tmp_path / "learning_curves.png"))
    assert set(sent) == {"init", "comparison/summary", "comparison/learning_curves", "finished"}  # PNGs only

    sent.clear()
    log_comparison(OmegaConf.create({"mode": "offline"}), "g", table_records([row]), None, files)
    assert sent == {}  # offline: nothing is sent


def test_a_sweep_is_grouped_by_its_date_and_time():
    from bertcmp.tracking import sweep_group

    assert sweep_group("outputs/multirun/2026-11-26/10-00-00") == "2026-11-26_10-00-00"
