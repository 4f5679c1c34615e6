"""A full disk is recognised however the library that wrote reports it, and named in one line."""

import errno

import pytest

from bertcmp.errors import NoSpaceError, is_disk_full, summary, writing


def chained(outer: Exception, inner: Exception) -> Exception:
    try:
        try:
            raise inner
        except Exception:
            raise outer
    except Exception as err:
        return err


@pytest.mark.parametrize("err, full", [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
    # safetensors (Rust) and torch.save to a path (C++) report it in their own types
    (Exception("Error while serializing: I/O error: No space left on device (os error 28)"), True),
    (chained(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0"),
             OSError(errno.ENOSPC, "No space left on device")), True),
    (OSError(errno.EACCES, "Permission denied"), False),
    (RuntimeError("CUDA out of memory"), False),
])
def test_a_full_disk_is_recognised(err, full):
    assert is_disk_full(err) is full


def test_writing_names_the_file_and_lets_other_errors_through(tmp_path):
    with pytest.raises(NoSpaceError) as stop:
        with writing(tmp_path / "run" / "metrics.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(stop.value).startswith(f"no space left on the disk holding {tmp_path / 'run'} (writing metrics.json): ")
    assert stop.value.__cause__ is None and stop.value.__suppress_context__  # one line, no chained traceback
    with pytest.raises(PermissionError):
        with writing(tmp_path / "x"):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_an_error_in_a_few_words_even_when_it_says_nothing():
    assert summary(ValueError("bad value\nand the whole traceback of a library")) == "ValueError: bad value"
    assert summary(KeyError()) == "KeyError" and summary(OSError("  ")) == "OSError"
