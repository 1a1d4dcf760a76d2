"""Atomic, idempotent publishing of a model version: ``<base>/<version>/{model.tflite, manifest.json}``.

A version is written into a hidden staging sibling (``<base>/.staging-<key>-<uuid>``) and renamed into place, so a
reader listing ``<base>`` sees either no version or a complete one: rename(2) of a directory is atomic on POSIX
file systems. (Object stores such as GCS have no atomic directory rename; there, readers should require
``manifest.json``, which is written last.) Version names are numeric (unix seconds, as the stock Pusher's
``UNIX_TIMESTAMP`` versioning), which TF Serving-style readers list and which hides the staging directories.

A push is identified by its ``push_key`` (the MLMD ids of the model and blessings, and the model's sha256). A
re-run of the same push finds its version through the key in ``manifest.json`` and publishes nothing new; it also
removes staging directories that an earlier, killed attempt of the same push left behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tfx.dsl.io import fileio

MODEL_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
STAGING_PREFIX = ".staging-"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """Where a push landed; ``reused`` when an earlier run of the same push had already published it."""

    version: str
    path: str
    reused: bool


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def _key_digest(push_key: Mapping[str, Any]) -> str:
    return sha256_of(json.dumps(push_key, sort_keys=True).encode())[:16]


def read_manifest(version_dir: str) -> dict[str, Any] | None:
    """The manifest of a published version, or ``None`` if the folder has none (not one of ours)."""
    path = _join(version_dir, MANIFEST_FILE)
    if not fileio.exists(path):
        return None
    with fileio.open(path, "r") as f:
        return json.load(f)


def published_versions(base_dir: str) -> list[str]:
    """Numeric version folders under ``base_dir``, oldest first (staging folders are not numeric)."""
    if not fileio.isdir(base_dir):
        return []
    names = [name.rstrip("/") for name in fileio.listdir(base_dir)]
    return sorted((n for n in names if n.isdigit()), key=int)


def find_published(base_dir: str, push_key: Mapping[str, Any]) -> str | None:
    """The version an earlier run of the same push published, if any."""
    wanted = dict(push_key)
    for version in published_versions(base_dir):
        manifest = read_manifest(_join(base_dir, version))
        if manifest is not None and manifest.get("push_key") == wanted:
            return version
    return None


def _remove_stale_staging(base_dir: str, digest: str) -> None:
    for name in fileio.listdir(base_dir):
        name = name.rstrip("/")
        if name.startswith(f"{STAGING_PREFIX}{digest}-"):
            log.warning("removing %s, left by an earlier attempt of this push that did not finish", name)
            fileio.rmtree(_join(base_dir, name))


def _next_version(base_dir: str, now: float) -> int:
    # Unix seconds, but always above the newest version, so two pushes in one second still get distinct names.
    versions = published_versions(base_dir)
    return max(int(now), int(versions[-1]) + 1 if versions else 0)


def publish(
    base_dir: str,
    model_bytes: bytes,
    manifest: Mapping[str, Any],
    push_key: Mapping[str, Any],
    *,
    on_staged: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Published:
    """Publishes ``model_bytes`` and ``manifest`` (plus ``version`` and ``push_key``) as a new version of ``base_dir``.

    Args:
      base_dir: the push destination's base directory (created if missing).
      model_bytes: the TFLite flatbuffer, written as ``model.tflite``.
      manifest: JSON-serializable facts about the push, written as ``manifest.json``.
      push_key: what identifies this push; a version already carrying it is reused instead of duplicated.
      on_staged: called with the staging folder once everything is written and before the rename. The
        atomicity test uses it to kill the process at the worst moment.
      clock: seconds since the epoch, for version names.
    """
    fileio.makedirs(base_dir)
    existing = find_published(base_dir, push_key)
    if existing is not None:
        log.info("version %s of %s already holds this push (same model and blessings): not publishing again",
                 existing, base_dir)
        return Published(existing, _join(base_dir, existing), reused=True)
    digest = _key_digest(push_key)
    _remove_stale_staging(base_dir, digest)
    staging = _join(base_dir, f"{STAGING_PREFIX}{digest}-{uuid.uuid4().hex}")
    fileio.makedirs(staging)
    with fileio.open(_join(staging, MODEL_FILE), "wb") as f:
        f.write(model_bytes)
    version = _next_version(base_dir, clock())
    while True:
        # The manifest goes last: on stores without atomic rename its presence marks a complete version.
        content = {**manifest, "version": str(version), "push_key": dict(push_key)}
        with fileio.open(_join(staging, MANIFEST_FILE), "w") as f:
            json.dump(content, f, indent=2, sort_keys=True)
        if on_staged is not None:
            on_staged(staging)
        final = _join(base_dir, str(version))
        if not fileio.exists(final):
            try:
                fileio.rename(staging, final)
                break
            except Exception:  # the plugins raise OSError or tf.errors.OpError; only a lost race is ours to handle
                if not fileio.exists(final):
                    raise
        # Another pusher took this version name between our check and the rename: take the next one.
        log.info("version %s of %s was taken concurrently; trying %s", version, base_dir, version + 1)
        version += 1
    log.info("published %d bytes of model and its manifest as %s", len(model_bytes), final)
    return Published(str(version), final, reused=False)
