"""Atomic, idempotent publishing (components/quantized_model_pusher/publish.py) on the local file system, with a real kill."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys

import pytest

from quantgate.components.quantized_model_pusher import publish
from quantgate.components.shared.digests import bytes_sha256

KEY = {"model_id": 7, "sha256": "ab" * 32, "model_blessing_id": 9}
MODEL = b"TFL3 not really a model, bytes are bytes"


def _published(base: str) -> list[str]:
    return sorted(name for name in os.listdir(base) if not name.startswith("."))


def test_publish_writes_model_and_manifest_under_a_numeric_version(tmp_path) -> None:
    base = str(tmp_path / "serving")
    result = publish.publish(base, MODEL, {"sha256": bytes_sha256(MODEL)}, KEY, clock=lambda: 1_700_000_000)

    assert (result.version, result.reused) == ("1700000000", False)
    assert result.path == os.path.join(base, "1700000000")
    assert _published(base) == ["1700000000"] == os.listdir(base)  # no staging folder left behind
    assert (tmp_path / "serving" / "1700000000" / "model.tflite").read_bytes() == MODEL
    manifest = json.loads((tmp_path / "serving" / "1700000000" / "manifest.json").read_text())
    assert manifest == {"sha256": bytes_sha256(MODEL), "version": "1700000000", "push_key": KEY}


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
import pytest

from quantgate.components.quantized_model_pusher import publish
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



def _stale_staging_name(push_key: dict) -> str:
    # The name an earlier, killed attempt of this push would have left.
    return f"{publish.STAGING_PREFIX}{publish._key_digest(push_key)}-0123abcd"


def test_a_symlinked_staging_entry_is_unlinked_not_followed(tmp_path) -> None:
    base, outside = tmp_path / "serving", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (outside / "precious.txt").write_text("not the pusher's to delete")
    link = base / _stale_staging_name(KEY)
    link.symlink_to(outside, target_is_directory=True)

    result = publish.publish(str(base), MODEL, {}, KEY, clock=lambda: 10)

    assert (outside / "precious.txt").read_text() == "not the pusher's to delete"
    assert not os.path.lexists(link)
    assert os.listdir(base) == ["10"] == publish.published_versions(str(base))
    assert (base / "10" / "model.tflite").read_bytes() == MODEL
    assert result == publish.Published("10", str(base / "10"), reused=False)


def test_links_inside_a_stale_staging_folder_are_not_followed(tmp_path) -> None:
    base, outside = tmp_path / "serving", tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    stale = base / _stale_staging_name(KEY)
    stale.mkdir(parents=True)
    (stale / "model.tflite").write_bytes(b"half")
    (stale / "escape").symlink_to(outside, target_is_directory=True)
    (stale / "dangling").symlink_to(tmp_path / "nowhere")
    stale_file = base / (_stale_staging_name(KEY) + "-file")  # a plain file with the prefix goes too
    stale_file.write_text("x")

    publish.publish(str(base), MODEL, {}, KEY, clock=lambda: 10)

    assert (outside / "precious.txt").read_text() == "keep"
    assert os.listdir(base) == ["10"]


def test_a_dangling_symlink_destination_is_refused_with_its_path(tmp_path) -> None:
    base = tmp_path / "serving"
    base.symlink_to(tmp_path / "gone", target_is_directory=True)
    with pytest.raises(ValueError) as raised:
        publish.publish(str(base), MODEL, {}, KEY)
    message, gone = str(raised.value), os.path.realpath(tmp_path / "gone")
    assert f"push destination {base} is a symlink to {gone}, which does not exist" in message
    assert f"create {gone} or point base_directory elsewhere" in message
    assert not (tmp_path / "gone").exists()
    assert os.path.islink(base)  # left as it was


def test_a_symlink_to_a_file_or_a_file_as_destination_is_refused(tmp_path) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "a-file")
    with pytest.raises(ValueError, match=r"is a symlink to .*a-file, which is not a directory"):
        publish.publish(str(tmp_path / "link"), MODEL, {}, KEY)
    with pytest.raises(ValueError, match=re.escape(f"push destination {tmp_path / 'a-file'} exists and is a file")):
        publish.publish(str(tmp_path / "a-file"), MODEL, {}, KEY)
    assert (tmp_path / "a-file").read_text() == "x"


def test_a_symlink_to_a_folder_publishes_into_the_folder(tmp_path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "serving").symlink_to(tmp_path / "real", target_is_directory=True)
    result = publish.publish(str(tmp_path / "serving") + "/", MODEL, {}, KEY, clock=lambda: 3)
    assert os.listdir(tmp_path / "real") == ["3"]
    assert (tmp_path / "real" / "3" / "model.tflite").read_bytes() == MODEL
    assert result.version == "3"


def test_a_destination_under_a_file_gets_a_clear_error(tmp_path) -> None:
    (tmp_path / "a-file").write_text("x")
    base = str(tmp_path / "a-file" / "serving")
    with pytest.raises(publish.PushDestinationError, match=re.escape(f"could not create push destination {base}")):
        publish.publish(base, MODEL, {}, KEY)


def test_a_read_only_destination_gets_a_clear_error_and_leaves_nothing(tmp_path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root, which ignores permission bits: chmod 0o555 cannot make a folder read-only; "
                    "the full-destination test below covers the same failure path")
    base = tmp_path / "serving"
    base.mkdir()
    base.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        with pytest.raises(publish.PushDestinationError, match=re.escape(f"in push destination {base}: ") + ".*writable"):
            publish.publish(str(base), MODEL, {}, KEY)
        assert os.listdir(base) == []
    finally:
        base.chmod(0o755)


# A real "destination full": the child's file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) makes write(2) fail
# with EFBIG once a file would grow past it; the kernel enforces it for root too.
_FULL_CHILD = """
import json, os, resource, signal, sys
from quantgate.components.quantized_model_pusher import publish
model_size, manifest_pad = int(sys.argv[2]), int(sys.argv[3])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))
try:
    publish.publish(sys.argv[1], b"x" * model_size, {"pad": "y" * manifest_pad}, {"model_id": 1})
except publish.PushDestinationError as e:
    print(json.dumps({"error": str(e), "cause": repr(e.__cause__)}))
    sys.exit(3)
"""


@pytest.mark.parametrize(("model_size", "manifest_pad", "failing_file"), [
    (100_000, 0, "model.tflite"),  # the model does not fit
    (1_000, 50_000, "manifest.json"),  # the model was written, then the manifest does not fit
])
def test_a_full_destination_gets_a_clear_error_and_leaves_nothing(tmp_path, model_size, manifest_pad,
                                                                   failing_file) -> None:
    base = str(tmp_path / "serving")
    child = subprocess.run([sys.executable, "-c", _FULL_CHILD, base, str(model_size), str(manifest_pad)],
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert child.returncode == 3, child.stderr[-3000:]
    error = json.loads(child.stdout.strip().splitlines()[-1])["error"]
    assert f"could not write {failing_file} into {base}/{publish.STAGING_PREFIX}" in error
    assert f"in push destination {base}: " in error
    assert "File too large" in error and "writable and has free space" in error
    assert os.listdir(base) == []  # no staging folder, no version

    # With room again, the same push goes through.
    assert publish.publish(base, b"x" * model_size, {"pad": "y" * manifest_pad}, {"model_id": 1}).reused is False
    assert len(publish.published_versions(base)) == 1 == len(os.listdir(base))


def test_extra_files_land_in_the_version_beside_the_model(tmp_path) -> None:
    base = str(tmp_path / "serving")
    extra = {"vocabularies/color": b"red\ngreen\n", "vocabularies/company": b"Flash Cab\n"}
    result = publish.publish(base, MODEL, {}, KEY, extra_files=extra, clock=lambda: 100)
    version = tmp_path / "serving" / "100"
    assert sorted(os.listdir(version)) == ["manifest.json", "model.tflite", "vocabularies"]
    assert {f"vocabularies/{n}": (version / "vocabularies" / n).read_bytes()
            for n in os.listdir(version / "vocabularies")} == extra
    assert os.listdir(base) == ["100"]  # no staging folder left behind
    assert publish.publish(base, MODEL, {}, KEY, extra_files=extra, clock=lambda: 200) == publish.Published(
        result.version, result.path, reused=True)


@pytest.mark.parametrize("name", ["../escape", "/abs", "vocabularies/../../x", "", "a//b", "model.tflite",
                                  "manifest.json"])
def test_extra_file_names_outside_the_version_or_over_its_files_are_refused(tmp_path, name: str) -> None:
    with pytest.raises(ValueError, match=rf"extra file name {re.escape(repr(name))}"):
        publish.publish(str(tmp_path / "serving"), MODEL, {}, KEY, extra_files={name: b"x"})
    assert not os.path.exists(tmp_path / "serving")  # refused before the destination is touched
