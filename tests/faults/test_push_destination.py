"""A push destination that is full or read-only: a clear error, the pusher FAILED, no version, and the next
attempt (space freed, write access back) publishes one complete version and removes a stale staging folder.

The destinations are real tmpfs mounts (a size limit, ``remount,ro``): as root, chmod stops no write. Each run
starts from the ``resumed`` baseline with another ``push_destination``, so only the pusher executes.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from quantgate.components.quantized_model_pusher import publish
from quantgate.components.shared.digests import bytes_sha256
from tests.faults.conftest import (
    COMPONENTS,
    PUSHER,
    ResumedHome,
    new_executions,
    run_to_end,
    snapshot,
    versions_and_leftovers,
)

# A real earlier attempt of the same push, killed between its write and its rename.
_STAGE_AND_DIE = """
import json, os, signal, sys
from quantgate.components.quantized_model_pusher import publish
publish.publish(sys.argv[1], b"stale", {}, json.loads(sys.argv[2]),
                on_staged=lambda staging: os.kill(os.getpid(), signal.SIGKILL))
"""


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Callable[[str, str], str]]:
    mounted: list[str] = []

    def mount(name: str, options: str) -> str:
        path = str(tmp_path / name)
        os.mkdir(path)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], capture_output=True,
                                text=True)
        if result.returncode != 0:
            pytest.skip(f"a full or read-only destination needs a tmpfs mount, refused here: {result.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", path], check=True)


def _remount(path: str, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", path], check=True)


def _fill(path: str) -> str:
    filler = os.path.join(path, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def _push_key(resumed: ResumedHome) -> dict:
    (version,), _ = resumed.rerun_versions
    return publish.read_manifest(f"{resumed.paths.serving_model_dir}/{version}")["push_key"]


def _assert_only_the_pusher_ran(resumed: ResumedHome, before: dict, after: dict, state: int) -> None:
    for component in COMPONENTS:
        expected = [state] if component == PUSHER else [pb.Execution.CACHED]
        assert [s for _, s in new_executions(before, after, component)] == expected, component


def _refused_then_published(resumed: ResumedHome, dest: str, name: str, error: str,
                            between: Callable[[], None], left_after_refusal: list[str]) -> None:
    paths = resumed.paths
    before = snapshot(paths)
    refused = run_to_end(paths, f"{name}-refused", push_destination=dest)
    log = open(refused.log_path).read()
    assert refused.process.returncode != 0, refused.log_tail()
    assert f"QuantizedModelPusher: could not {error}" in log and f"push destination {dest}" in log, refused.log_tail()
    after = snapshot(paths)
    _assert_only_the_pusher_ran(resumed, before, after, pb.Execution.FAILED)
    assert versions_and_leftovers(dest) == ([], left_after_refusal)

    between()
    retried = run_to_end(paths, f"{name}-retried", push_destination=dest)
    assert retried.process.returncode == 0, retried.log_tail()
    _assert_only_the_pusher_ran(resumed, after, snapshot(paths), pb.Execution.COMPLETE)
    versions, leftovers = versions_and_leftovers(dest)
    assert len(versions) == 1 and leftovers == []
    manifest = publish.read_manifest(f"{dest}/{versions[0]}")
    assert manifest["push_key"] == _push_key(resumed)
    with open(f"{dest}/{versions[0]}/{publish.MODEL_FILE}", "rb") as f:
        assert bytes_sha256(f.read()) == manifest["sha256"]


def test_full_destination(resumed: ResumedHome, tmpfs: Callable[[str, str], str]) -> None:
    dest = tmpfs("full", "size=64k")
    filler = _fill(dest)
    _refused_then_published(resumed, dest, "full", f"write {publish.MODEL_FILE} into", lambda: os.remove(filler),
                            left_after_refusal=["filler"])


def test_read_only_destination_and_a_stale_staging_folder(resumed: ResumedHome,
                                                          tmpfs: Callable[[str, str], str]) -> None:
    dest = tmpfs("readonly", "size=1m")
    killed = subprocess.run([sys.executable, "-c", _STAGE_AND_DIE, dest, json.dumps(_push_key(resumed))],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ([], [stale]) = versions_and_leftovers(dest)
    assert stale.startswith(publish.STAGING_PREFIX)
    _remount(dest, "ro")
    # Read-only: the stale folder cannot even be removed; it stays until write access is back.
    _refused_then_published(resumed, dest, "readonly", "remove the staging folder an earlier attempt left",
                            lambda: _remount(dest, "rw"), left_after_refusal=[stale])
