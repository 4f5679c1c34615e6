"""Run files are written whole or not at all, and predictions line up by item."""

import json
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bertcmp.outputs import write_checkpoint, write_json, write_predictions


def test_json_write_replaces_whole_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"status": "running"})
    write_json(path, {"status": "completed", "value": np.float32(0.5)})
    assert json.loads(path.read_text()) == {"status": "completed", "value": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_predictions_are_sorted_by_index(tmp_path):
    path = tmp_path / "test_predictions.csv"
    probs = np.array([[0.1, 0.9], [0.4, 0.6], [0.8, 0.2]])
    write_predictions(path, np.array([7, 2, 5]), np.array([1, 0, 1]), np.array([1, 1, 0]), probs, ["neg", "pos"])
    assert path.read_text().splitlines() == ["index,label,pred,prob_pos", "2,0,1,0.600000", "5,1,0,0.200000",
                                             "7,1,1,0.900000"]


def test_more_classes_are_written_by_name(tmp_path):
    path = tmp_path / "test_predictions.csv"
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    write_predictions(path, np.array([4, 1]), np.array([0, 2]), np.array([0, 1]), probs, ["a b", "c", "d"],
                      n_tokens=np.array([9, 12]))
    assert path.read_text().splitlines() == ["index,label,pred,prob_a b,prob_c,prob_d,n_tokens",
                                             "1,d,c,0.100000,0.300000,0.600000,12",
                                             "4,a b,a b,0.700000,0.200000,0.100000,9"]


def test_checkpoint_swaps_in_as_a_whole(tmp_path):
    target = tmp_path / "checkpoint"

    def weights(value: float):
        return lambda d: save_file({"w": torch.full((2,), value)}, str(d / "model.safetensors"))

    write_checkpoint(target, lambda d: (weights(1.0)(d), (d / "config.json").write_text("{}")))
    write_checkpoint(target, weights(0.0))
    assert sorted(p.name for p in target.iterdir()) == ["model.safetensors"]
    assert load_file(target / "model.safetensors")["w"].tolist() == [0.0, 0.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_file_system_without_locks_runs_unguarded_with_a_warning(tmp_path, monkeypatch, caplog):
    import errno
    import fcntl

    from bertcmp.outputs import holding, is_held

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with holding(tmp_path) as holder:
        assert holder is None
        assert is_held(tmp_path) is None  # cannot tell
    assert f"cannot lock {tmp_path} (No locks available): a second sweep in this directory would not be noticed" \
        in caplog.text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    import errno
    import os

    import pytest

    from bertcmp.errors import NoSpaceError

    write_json(tmp_path / "metrics.json", {"status": "running"})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(NoSpaceError):
        write_json(tmp_path / "metrics.json", {"status": "completed"})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_signal_during_a_resume_state_write_waits_until_it_is_written(tmp_path, monkeypatch):
    """SLURM's requeue signal (USR2) or SIGTERM in the middle of torch.save: the state is written whole first,
    then the signal's own handler runs, once."""
    import signal

    import torch

    from bertcmp import outputs

    handled = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: handled.append(signum))
    saving = torch.save

    def save_with_a_signal_in_the_middle(state, f):
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR2)  # twice: handled once, as a pending signal would be
        assert handled == []  # not yet: the write goes on
        saving(state, f)

    monkeypatch.setattr(torch, "save", save_with_a_signal_in_the_middle)
    try:
        outputs.write_resume_state(tmp_path, {"w": torch.ones(3)})
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert handled == [signal.SIGUSR2]
    assert torch.equal(outputs.read_resume_state(tmp_path)["w"], torch.ones(3))
