"""bertcmp.prepare: a sweep's grid composed as Hydra composes it, its models fetched and its data read and tokenized
once, ahead of the runs; and runs that go on offline from the cache when the Hub cannot be reached.

The downloads run against tests/hub_server.py, a stand-in for the Hub on this machine (HF_ENDPOINT)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bertcmp import prepare
from bertcmp.errors import BertcmpError
from conftest import run_cli, save_tiny_pretrained
from hub_fixtures import write as write_hub_data
from hub_server import TOKEN, HubServer

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- the grid


def test_the_grid_is_the_sweeps_and_runs_differing_by_lr_or_seed_share_one_tokenization():
    plan = prepare.plan_sweep(["experiment=smoke", "model=bert,modernbert", "trainer.lr=1e-3,2e-3", "seed=0,1"])
    assert len(plan.jobs) == 8
    assert plan.jobs[0][0] == ["experiment=smoke", "model=bert", "trainer.lr=0.001", "seed=0"]  # as Hydra names it
    assert len(plan.tokenizations) == 2  # one per model: the tokenizer differs, the data does not
    assert sorted(len(cfgs) for cfgs in plan.tokenizations.values()) == [4, 4]
    # a length or a truncation is another tokenized copy; a batch size is not
    assert len(prepare.plan_sweep(["experiment=smoke", "data.max_length=32,64", "data.batch_size=8,16"])
               .tokenizations) == 2


def test_a_presets_own_grid_is_read_as_the_sweeper_reads_it():
    plan = prepare.plan_sweep(["experiment=benchmark_smoke", "model=bert"])  # the command line narrows the preset
    assert len(plan.jobs) == 13
    assert {cfg.model.name for _, cfg in plan.jobs} == {"bert"}
    assert len({cfg.data.name for _, cfg in plan.jobs}) == 13


@pytest.mark.parametrize("args, message", [
    (["model=bert,nonesuch"], "the sweep does not compose: In 'config': Could not find 'model/nonesuch' Available "
                              "options in 'model': auto bert modernbert"),
    (["experiment=smoke", "trainer.lr=0,1e-3"], "trainer.lr=0.0 must be > 0 (the reference recipe uses "
                                                "trainer.lr=5e-5) (in the run experiment=smoke trainer.lr=0)"),
    (["experiment=smoke", "trainer.lrr=1"], "Could not override 'trainer.lrr'"),
])
def test_a_grid_that_does_not_compose_is_one_line_before_anything_is_fetched(args, message, capsys):
    assert prepare.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Config search path" not in err


def test_hub_ids_without_the_hub_are_one_line_naming_them(capsys):
    assert prepare.main(["model=bert,modernbert", "data=imdb"]) == 2  # HF_HUB_OFFLINE=1 (conftest)
    assert capsys.readouterr().err == (
        "error: HF_HUB_OFFLINE is set, so the Hub is not asked for bert-base-uncased, answerdotai/ModernBERT-base, "
        "stanfordnlp/imdb: run prepare without it, where the Hub can be reached (a login node)\n")


def test_models_bigger_than_the_free_disk_are_refused_before_any_download(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 10**6, 10**6))
    with pytest.raises(BertcmpError, match=r"the models need 2.0 GB and the disk of the Hugging Face cache \(.*hub\) "
                                           r"has 1.0 MB free: free some, or set HF_HOME to a larger disk"):
        prepare.check_space(2 * 10**9)


def test_a_disk_that_fills_while_downloading_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(prepare, "require_hub", lambda hub_ids: None)  # as if it answered
    monkeypatch.setattr(prepare, "files_to_fetch", lambda repo_id: [("config.json", 100)])

    def fill(repo_id, files):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prepare, "download", fill)
    assert prepare.main(["experiment=smoke", "model=auto", "model.pretrained=org/model"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: no space left on the disk of a cache (OSError: [Errno 28] No space left on device): free "
                   "some or set HF_HOME / BERTCMP_CACHE_DIR elsewhere, then run the same command again\n")


def test_the_cost_counts_every_epoch_of_every_run():
    plan = prepare.Plan(jobs=[([], None)] * 3)
    prepared = [prepare.Prepared(2, [3, 3], 1000, 50_000, "imdb", "bert-base-uncased"),
                prepare.Prepared(1, [1], 200, 4000, "sst2", "models/tiny")]
    assert prepare.cost_table(plan, prepared) == [
        "  imdb x bert-base-uncased: 2 runs x 1,000 examples x 3 epochs, 150.0 k tokens per run",
        "  sst2 x models/tiny: 1 run x 200 examples x 1 epoch, 4.0 k tokens per run",
        "  in all: 3 runs, 6.2 k training examples, 304.0 k training tokens (real tokens, before padding)"]


def test_sizes_and_counts_read_as_people_write_them():
    assert [prepare._human(n) for n in (512, 1536, 2.5e6, 1.4e9, 3e12)] == ["512 B", "1.5 KB", "2.5 MB", "1.4 GB",
                                                                            "3000.0 GB"]
    assert [prepare._count(n) for n in (999, 51_200, 2.1e6, 1.4e9)] == ["999", "51.2 k", "2.1 M", "1.4 G"]


# ---------------------------------------------------------------------------------------------- with a Hub


@pytest.fixture(scope="module")
def standin(tmp_path_factory, reviews):
    """The stand-in Hub: two tiny checkpoints (BERT, ModernBERT), a private and a gated one, and a tiny IMDB in its
    layout."""
    root = tmp_path_factory.mktemp("hub")
    for family in ("bert", "modernbert"):
        save_tiny_pretrained(family, root / "models" / "tiny-org" / f"tiny-{family}", reviews["text"])
    for copy in ("private-bert", "gated-bert"):
        shutil.copytree(root / "models" / "tiny-org" / "tiny-bert", root / "models" / "tiny-org" / copy)
    write_hub_data("imdb", root / "datasets" / "stanfordnlp", n=120)
    server = HubServer(root, private=["models/tiny-org/private-bert"], gated=["models/tiny-org/gated-bert"]).start()
    yield server
    server.stop()


def hub_env(tmp_path: Path, endpoint: str, **more: str) -> dict:
    """A user's environment with the Hub at `endpoint`, online, and caches of its own."""
    return {"HF_HOME": str(tmp_path / "hf"), "BERTCMP_CACHE_DIR": str(tmp_path / "cache"), "HF_ENDPOINT": endpoint,
            "HF_HUB_OFFLINE": None, "HF_DATASETS_OFFLINE": None, "HF_HUB_DISABLE_TELEMETRY": "1", **more}


def run_prepare(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    return subprocess.run([sys.executable, "-m", "bertcmp.prepare", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={k: v for k, v in environment.items() if v is not None})


GRID = ["model=auto", "model.pretrained=tiny-org/tiny-bert,tiny-org/tiny-modernbert", "data=imdb",
        "data.max_length=32", "trainer.epochs=1", "trainer.lr=1e-3,2e-3"]


@pytest.mark.slow
def test_prepare_fetches_once_and_the_sweep_runs_from_the_cache_alone_to_the_same_numbers(standin, tmp_path):
    server = HubServer(standin.root).start()  # its own, to be stopped
    env = hub_env(tmp_path, server.url)
    prepared = run_prepare(*GRID, cwd=tmp_path, env=env)
    assert prepared.returncode == 0, prepared.stderr
    out = prepared.stdout
    assert re.search(r"model tiny-org/tiny-bert .* fetched  ", out)
    assert re.search(r"model tiny-org/tiny-modernbert .* fetched  ", out)
    assert re.search(r"data imdb: [\d,]+ / \d+ / \d+, 2 classes .* fetched  ", out)
    assert len(re.findall(r"tokenized for .* tokenized  ", out)) == 2  # two tokenizers, two learning rates: two copies
    assert "in all: 4 runs," in out
    command = f"HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m bertcmp -m {' '.join(GRID)}"
    assert command in out
    downloaded = [r for r in server.requests if "/resolve/" in r and r.startswith("GET")]
    assert not any(name in r for r in downloaded for name in ("pytorch_model", ".onnx", ".msgpack"))

    again = run_prepare(*GRID, cwd=tmp_path, env=env)  # nothing left to do
    assert again.returncode == 0
    assert not re.search(r" (fetched|tokenized)  ", again.stdout) and again.stdout.count(" already there ") == 5

    server.stop()  # the compute node: no Hub, offline as the printed command says
    offline = run_cli("-m", *GRID, "logger.mode=disabled", f"hydra.sweep.dir={tmp_path / 'offline'}", cwd=tmp_path,
                      env={**env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    log = offline.stdout + offline.stderr
    assert offline.returncode == 0, log[-3000:]
    assert "tokenizing" not in log and log.count("tokenized data: cache hit") == 4

    # the same runs from local copies of the same files: prepared (offline here), and without prepare
    local = tmp_path / "local"
    shutil.copytree(standin.root / "datasets" / "stanfordnlp" / "imdb", local / "imdb")
    models = ",".join(str(shutil.copytree(standin.root / "models" / "tiny-org" / f"tiny-{f}", local / f"tiny-{f}"))
                      for f in ("bert", "modernbert"))
    grid = [a if not a.startswith("model.pretrained=") else f"model.pretrained={models}" for a in GRID]
    grid += [f"data.source={local / 'imdb'}", "logger.mode=disabled"]
    local_env = {"BERTCMP_CACHE_DIR": str(tmp_path / "cache-local"), "HF_HOME": str(tmp_path / "hf-local")}
    prepared = run_prepare(*grid, cwd=tmp_path, env=local_env)
    assert prepared.returncode == 0, prepared.stderr
    assert len(re.findall(r"tokenized for .* tokenized  ", prepared.stdout)) == 2
    assert len(re.findall(r"^tokenizing ", prepared.stderr, re.MULTILINE)) == 2  # each combination once
    local_sweep = run_cli("-m", *grid, f"hydra.sweep.dir={tmp_path / 'local-sweep'}", cwd=tmp_path, env=local_env)
    log = local_sweep.stdout + local_sweep.stderr
    assert local_sweep.returncode == 0, log[-3000:]
    assert "tokenizing" not in log and log.count("tokenized data: cache hit") == 4
    plain = run_cli("-m", *grid, f"hydra.sweep.dir={tmp_path / 'plain'}", cwd=tmp_path,
                    env={"BERTCMP_CACHE_DIR": str(tmp_path / "cache-plain"), "HF_HOME": str(tmp_path / "hf-plain")})
    assert plain.returncode == 0, (plain.stdout + plain.stderr)[-3000:]
    assert "tokenizing" in plain.stdout + plain.stderr
    sweeps = [sorted((tmp_path / name).glob("*/test_predictions.csv")) for name in ("offline", "local-sweep", "plain")]
    assert [len(runs) for runs in sweeps] == [4, 4, 4]
    for offline_run, local_run, plain_run in zip(*sweeps):
        assert offline_run.read_bytes() == local_run.read_bytes() == plain_run.read_bytes(), plain_run


class SilentServer:
    """An endpoint that accepts connections and never answers; what it was asked is kept."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.asked: list[str] = []
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            conn.settimeout(2)
            try:
                self.asked.append(conn.recv(4096).split(b"\r\n")[0].decode())
            except OSError:
                self.asked.append("?")

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.mark.slow
def test_a_run_whose_hub_never_answers_goes_on_offline_from_the_cache_after_one_probe(standin, tmp_path):
    env = hub_env(tmp_path, standin.url)
    args = ["model=auto", "model.pretrained=tiny-org/tiny-bert", "data=imdb", "data.max_length=32", "trainer.epochs=1"]
    assert run_prepare(*args, cwd=tmp_path, env=env).returncode == 0
    silent = SilentServer()
    try:
        run = run_cli(*args, "logger.mode=disabled", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
                      env={**env, "HF_ENDPOINT": silent.url})
    finally:
        silent.close()
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert f"the Hugging Face Hub ({silent.url}) did not answer within 5 s: going on offline, with " \
           "tiny-org/tiny-bert, stanfordnlp/imdb from the cache" in log
    assert silent.asked == ["GET / HTTP/1.1"]  # the probe, and not one request of transformers' or datasets'


@pytest.mark.slow
def test_what_the_hub_does_not_have_or_refuses_is_one_line_and_nothing_is_fetched(standin, tmp_path):
    env = hub_env(tmp_path, standin.url)
    base = ["model=auto", "data=imdb", "trainer.epochs=1"]
    for overrides, message in [
            (["model.pretrained=tiny-org/tiny-bert,tiny-org/no-such-model"],
             "model.pretrained='tiny-org/no-such-model' is not a model on the Hub"),
            (["model.pretrained=tiny-org/tiny-bert,tiny-org/private-bert"],
             "or it is private and no token with access was given (`hf auth login`, or HF_TOKEN)"),
            (["model.pretrained=tiny-org/tiny-bert,tiny-org/gated-bert"],
             "model.pretrained='tiny-org/gated-bert' is gated: accept its terms on its page on the Hub, then log in"),
            (["model.pretrained=tiny-org/tiny-bert", "data.source=stanfordnlp/no-such-data"],
             "data.source='stanfordnlp/no-such-data' is not a dataset on the Hub")]:
        result = run_prepare(*base, *overrides, cwd=tmp_path, env=env)
        assert result.returncode == 2
        assert message in result.stderr and "Traceback" not in result.stderr
        assert not list((tmp_path / "hf").glob("hub/models--*/blobs/*"))  # checked before any download
    with_token = run_prepare(*base, "model.pretrained=tiny-org/private-bert", cwd=tmp_path,
                             env={**env, "HF_TOKEN": TOKEN})
    assert with_token.returncode == 0, with_token.stderr
    assert re.search(r"model tiny-org/private-bert .* fetched ", with_token.stdout)


@pytest.mark.slow
def test_a_download_killed_midway_is_fetched_whole_when_run_again_and_its_partial_file_removed(standin, tmp_path):
    root = tmp_path / "slow-hub"
    big = shutil.copytree(standin.root / "models" / "tiny-org" / "tiny-bert", root / "models" / "tiny-org" / "big-bert")
    # matched by *.safetensors: fetched. huggingface_hub writes what arrives 10 MiB at a time: 16 MB at 4 MB/s leaves
    # 1.4 s to find the first 10 MiB written and kill the download before it ends
    (big / "extra.safetensors").write_bytes(os.urandom(16_000_000))
    server = HubServer(root, rate=4_000_000).start()
    env = hub_env(tmp_path, server.url)
    args = ["experiment=smoke", "model=auto", "model.pretrained=tiny-org/big-bert"]
    blobs = tmp_path / "hf" / "hub" / "models--tiny-org--big-bert" / "blobs"
    try:
        first = subprocess.Popen([sys.executable, "-m", "bertcmp.prepare", *args], cwd=tmp_path,
                                 env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not any(size >= 10 * 2**20 for size in partial_sizes(blobs)):
            assert first.poll() is None, "prepare ended before the download could be killed"
            time.sleep(0.02)
        first.kill()  # as a dropped login session would
        first.wait()
        partials = list(blobs.glob("*.incomplete"))  # the big file's, and any small one cut with it
        for partial in partials:  # run again an hour later
            os.utime(partial, (partial.stat().st_atime - 3600, partial.stat().st_mtime - 3600))
        second = run_prepare(*args, cwd=tmp_path, env=env)
    finally:
        server.stop()
    assert second.returncode == 0, second.stderr
    assert re.search(r"model tiny-org/big-bert .* fetched  ", second.stdout)
    assert all(f"removed {partial} (" in second.stderr and not partial.exists() for partial in partials)
    snapshot = next((tmp_path / "hf" / "hub" / "models--tiny-org--big-bert" / "snapshots").iterdir())
    assert (snapshot / "extra.safetensors").read_bytes() == (big / "extra.safetensors").read_bytes()
    assert not list(blobs.glob("*.incomplete"))


def partial_sizes(blobs: Path) -> list[int]:
    sizes = []
    for partial in blobs.glob("*.incomplete"):
        try:
            sizes.append(partial.stat().st_size)
        except FileNotFoundError:  # renamed into place meanwhile
            continue
    return sizes


@pytest.mark.slow
def test_offline_a_run_missing_from_the_cache_names_what_and_the_prepare_command(tmp_path):
    run = run_cli("model=auto", "model.pretrained=tiny-org/never-fetched", "data=imdb", "logger.mode=disabled",
                  f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf")})
    log = run.stdout + run.stderr
    assert run.returncode == 1 and "Traceback" not in log
    assert ("model.pretrained='tiny-org/never-fetched' is not in the Hugging Face cache "
            f"({tmp_path / 'hf'}) and the Hub is not used (offline); fetch it where the Hub can be reached, with the "
            "sweep's overrides: python -m bertcmp.prepare model=auto model.pretrained=tiny-org/never-fetched "
            "data=imdb logger.mode=disabled") in log
