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
