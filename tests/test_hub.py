"""bertcmp.hub: Hub ids told from local paths, and offline mode taken for a job when the Hub does not answer."""

from __future__ import annotations

import logging
import socket

import datasets.config
import pytest
from huggingface_hub import constants

from bertcmp import hub


@pytest.mark.parametrize("name, is_id", [
    ("bert-base-uncased", True), ("answerdotai/ModernBERT-base", True), ("stanfordnlp/imdb", True),
    ("../shared/data/imdb", False), ("/data/imdb", False), ("~/models/bert", False), ("outputs/fixtures/imdb", False),
    ("data/*.jsonl", False),
])
def test_a_hub_id_is_owner_slash_name_and_not_a_path(name, is_id):
    assert hub.is_hub_id(name) is is_id


def test_an_existing_folder_named_like_a_hub_id_is_local(tmp_path, monkeypatch):
    (tmp_path / "org" / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert not hub.is_hub_id("org/model")


@pytest.fixture
def online(monkeypatch):
    """As a run without HF_HUB_OFFLINE (the tests set it): the Hub's answer decides."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)


def test_a_hub_that_does_not_answer_means_offline_for_the_job_and_only_for_it(online, monkeypatch, caplog):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", url)
    with caplog.at_level(logging.WARNING, logger="bertcmp"), silent:
        with hub.offline_unless_reachable(["bert-base-uncased"], seconds=0.5):
            assert hub.is_offline() and datasets.config.HF_HUB_OFFLINE and datasets.config.HF_DATASETS_OFFLINE
    assert not hub.is_offline() and not datasets.config.HF_HUB_OFFLINE  # the next job asks again
    assert [r.getMessage() for r in caplog.records] == [
        f"the Hugging Face Hub ({url}) did not answer within 0.5 s: going on offline, with bert-base-uncased from "
        f"the cache ({constants.HF_HOME})"]


def test_a_job_that_needs_no_hub_does_not_ask_it(online, monkeypatch):
    asked = []
    monkeypatch.setattr(hub, "answers", lambda url, seconds: asked.append(url) or False)
    with hub.offline_unless_reachable([]):
        assert not hub.is_offline()
    assert asked == []


def test_a_hub_that_answers_leaves_the_job_online(online, monkeypatch):
    monkeypatch.setattr(hub, "answers", lambda url, seconds: True)
    with hub.offline_unless_reachable(["bert-base-uncased"]):
        assert not hub.is_offline()


def test_offline_mode_is_restored_however_the_job_ends(online):
    with pytest.raises(RuntimeError), hub.offline_mode():
        raise RuntimeError("the job failed")
    assert not hub.is_offline()
