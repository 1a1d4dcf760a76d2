"""Atomic, idempotent publishing (components/pusher/publish.py) on the local file system, with a real kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from components.pusher import publish

KEY = {"model_id": 7, "sha256": "ab" * 32, "model_blessing_id": 9}
MODEL = b"TFL3 not really a model, bytes are bytes"


def _published(base: str) -> list[str]:
    return sorted(name for name in os.listdir(base) if not name.startswith("."))


def test_publish_writes_model_and_manifest_under_a_numeric_version(tmp_path) -> None:
    base = str(tmp_path / "serving")
    result = publish.publish(base, MODEL, {"sha256": publish.sha256_of(MODEL)}, KEY, clock=lambda: 1_700_000_000)

    assert (result.version, result.reused) == ("1700000000", False)
    assert result.path == os.path.join(base, "1700000000")
    assert _published(base) == ["1700000000"] == os.listdir(base)  # no staging folder left behind
    assert (tmp_path / "serving" / "1700000000" / "model.tflite").read_bytes() == MODEL
    manifest = json.loads((tmp_path / "serving" / "1700000000" / "manifest.json").read_text())
    assert manifest == {"sha256": publish.sha256_of(MODEL), "version": "1700000000", "push_key": KEY}


def test_same_push_twice_reuses_the_version(tmp_path) -> None:
    base = str(tmp_path)
    first = publish.publish(base, MODEL, {}, KEY, clock=lambda: 100)
    again = publish.publish(base, MODEL, {}, KEY, clock=lambda: 200)
    assert again == publish.Published(first.version, first.path, reused=True)
    assert _published(base) == ["100"]


def test_another_push_in_the_same_second_gets_the_next_version(tmp_path) -> None:
    base = str(tmp_path)
    publish.publish(base, MODEL, {}, KEY, clock=lambda: 100)
    other = publish.publish(base, b"other", {}, {**KEY, "model_id": 8}, clock=lambda: 100)
    assert other.version == "101"
    assert publish.published_versions(base) == ["100", "101"]
    assert publish.find_published(base, {**KEY, "model_id": 8}) == "101"
    assert publish.find_published(base, {**KEY, "model_id": 99}) is None


def test_foreign_folders_are_ignored(tmp_path) -> None:
    (tmp_path / "42").mkdir()  # a version someone else published, without a manifest
    (tmp_path / "README").write_text("not a version")
    assert publish.published_versions(str(tmp_path)) == ["42"]
    assert publish.read_manifest(str(tmp_path / "42")) is None
    assert publish.publish(str(tmp_path), MODEL, {}, KEY, clock=lambda: 5).version == "43"


_CHILD = """
import sys, time
from components.pusher import publish
def pause(staging):
    print("STAGED", staging, flush=True)
    time.sleep(600)
publish.publish(sys.argv[1], b"x" * 100_000, {"note": "killed"}, {"model_id": 1}, on_staged=pause)
"""


def test_kill_between_write_and_rename_leaves_no_partial_version(tmp_path) -> None:
    base = str(tmp_path / "serving")
    child = subprocess.Popen([sys.executable, "-c", _CHILD, base], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        line = child.stdout.readline()
        assert line.startswith("STAGED "), f"the pushing process did not reach the rename (got {line!r})"
        staging = line.split(" ", 1)[1].strip()
        # Everything is written and complete in the staging folder: the kill lands between write and rename.
        assert sorted(os.listdir(staging)) == ["manifest.json", "model.tflite"]
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()

    # A reader sees no version at all: the only folder is the hidden staging one.
    assert publish.published_versions(base) == []
    assert [n for n in os.listdir(base) if not n.startswith(publish.STAGING_PREFIX)] == []

    # The retry of the same push cleans the leftover up and publishes one complete version.
    retried = publish.publish(base, b"x" * 100_000, {"note": "retried"}, {"model_id": 1})
    assert os.listdir(base) == [retried.version]
    assert publish.read_manifest(retried.path)["note"] == "retried"


def test_staging_of_an_other_push_is_left_alone(tmp_path) -> None:
    stranger = tmp_path / f"{publish.STAGING_PREFIX}0123456789abcdef-feed"
    stranger.mkdir()
    publish.publish(str(tmp_path), MODEL, {}, KEY, clock=lambda: 1)
    assert stranger.exists()

