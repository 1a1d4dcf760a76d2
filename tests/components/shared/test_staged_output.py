"""staged_output: an artifact's files appear all at once, in order, or not at all; staging never stays behind."""

from __future__ import annotations

import os

import pytest

from quantgate.components.shared.staged_output import STAGING_DIRNAME, staged_output


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def test_entries_are_moved_into_place_and_the_staging_folder_is_gone(tmp_path) -> None:
    uri = str(tmp_path / "artifact")
    with staged_output(uri, ("data.bin", "sub", "manifest.json")) as staging:
        assert os.path.dirname(staging) == uri and os.path.basename(staging) == STAGING_DIRNAME
        _write(os.path.join(staging, "data.bin"), "data")
        os.makedirs(os.path.join(staging, "sub"))
        _write(os.path.join(staging, "sub", "model"), "model")
        _write(os.path.join(staging, "scratch.tmp"), "beam temp file, not published")
        _write(os.path.join(staging, "manifest.json"), "{}")
    assert sorted(os.listdir(uri)) == ["data.bin", "manifest.json", "sub"]
    assert open(os.path.join(uri, "sub", "model")).read() == "model"


def test_a_failure_midway_leaves_no_artifact_content_and_no_staging_folder(tmp_path) -> None:
    uri = str(tmp_path / "artifact")
    with pytest.raises(RuntimeError, match="converter died"):
        with staged_output(uri, ("data.bin", "manifest.json")) as staging:
            _write(os.path.join(staging, "data.bin"), "half of it")
            raise RuntimeError("converter died")
    assert os.listdir(uri) == []


def test_a_missing_entry_publishes_nothing(tmp_path) -> None:
    uri = str(tmp_path / "artifact")
    with pytest.raises(FileNotFoundError, match=r"lacks \['manifest.json'\]"):
        with staged_output(uri, ("data.bin", "manifest.json")) as staging:
            _write(os.path.join(staging, "data.bin"), "data")
    assert os.listdir(uri) == []


def test_a_staging_folder_left_by_a_killed_attempt_is_replaced(tmp_path) -> None:
    uri = tmp_path / "artifact"
    (uri / STAGING_DIRNAME).mkdir(parents=True)
    (uri / STAGING_DIRNAME / "stale.bin").write_text("from the killed attempt")
    with staged_output(str(uri), ("data.bin",)) as staging:
        assert os.listdir(staging) == []
        _write(os.path.join(staging, "data.bin"), "new")
    assert sorted(os.listdir(uri)) == ["data.bin"]


def test_an_existing_entry_of_the_same_name_is_replaced(tmp_path) -> None:
    uri = tmp_path / "artifact"
    (uri / "Format-Serving").mkdir(parents=True)
    (uri / "Format-Serving" / "old").write_text("old")
    with staged_output(str(uri), ("Format-Serving",)) as staging:
        os.makedirs(os.path.join(staging, "Format-Serving"))
        _write(os.path.join(staging, "Format-Serving", "model.tflite"), "new")
    assert os.listdir(uri / "Format-Serving") == ["model.tflite"]


def test_a_move_that_fails_midway_takes_back_what_was_moved(tmp_path) -> None:
    uri = str(tmp_path / "artifact")
    # The second entry's target folder does not exist in <uri>: its rename fails after the first one was moved.
    with pytest.raises(Exception):  # noqa: B017 - the file system's own error, whichever it raises
        with staged_output(uri, ("data.bin", "sub/manifest.json")) as staging:
            _write(os.path.join(staging, "data.bin"), "data")
            os.makedirs(os.path.join(staging, "sub"))
            _write(os.path.join(staging, "sub", "manifest.json"), "{}")
    assert os.listdir(uri) == []
