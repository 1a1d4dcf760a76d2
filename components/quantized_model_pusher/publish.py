"""Atomic, idempotent publishing of a model version: ``<base>/<version>/{model.tflite, manifest.json}``, plus any
extra files (the transform's vocabularies) written before the manifest, in the same staging folder.

A version is written into a hidden staging sibling (``<base>/.staging-<key>-<uuid>``) and renamed into place, so a
reader listing ``<base>`` sees either no version or a complete one: rename(2) of a directory is atomic on POSIX
file systems. (Object stores such as GCS have no atomic directory rename; there, readers should require
``manifest.json``, which is written last.) Version names are numeric (unix seconds, as the stock Pusher's
``UNIX_TIMESTAMP`` versioning), which TF Serving-style readers list and which hides the staging directories.

A push is identified by its ``push_key`` (the MLMD ids of the model and blessings, and the model's sha256). A
re-run of the same push finds its version through the key in ``manifest.json`` and publishes nothing new; it also
removes staging directories that an earlier, killed attempt of the same push left behind.

Clean-up never follows a symbolic link: a link found where a staging folder would be is unlinked itself, and links
inside a staging folder are removed, not descended into (for local paths; object stores have no links). A push
destination that is a dangling link, a link to a file, or a file is refused with a ``ValueError`` saying what to
fix. A write that fails (read-only or full destination) raises ``PushDestinationError`` naming the destination,
after removing the staging folder it created, so nothing partial is left.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tfx.dsl.io import fileio

from quantgate.components.shared import properties, strict_json
from quantgate.components.shared.digests import bytes_sha256

MODEL_FILE = properties.TFLITE_FILENAME
MANIFEST_FILE = properties.PUSH_MANIFEST_FILENAME
STAGING_PREFIX = ".staging-"

log = logging.getLogger(__name__)


class PushDestinationError(OSError):
    """The push destination could not be written (read-only, full, vanished...); the message names it."""


@dataclass(frozen=True)
class Published:
    """Where a push landed; ``reused`` when an earlier run of the same push had already published it."""

    version: str
    path: str
    reused: bool


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def _key_digest(push_key: Mapping[str, Any]) -> str:
    return bytes_sha256(json.dumps(push_key, sort_keys=True).encode())[:16]


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


def _local_path(uri: str) -> str | None:
    """The POSIX path of a local URI (no scheme, or ``file://``); ``None`` for object stores, which have no links."""
    if uri.startswith("file://"):
        return uri[len("file://"):]
    return None if "://" in uri else uri


def _remove(path: str) -> None:
    """Removes a file, a folder tree or a symbolic link, never following a link (a link is unlinked itself)."""
    local = _local_path(path)
    if local is None:
        if fileio.isdir(path):
            fileio.rmtree(path)
        else:
            fileio.remove(path)
        return
    try:
        if os.path.islink(local.rstrip("/")) or not os.path.isdir(local):
            os.remove(local)
        else:
            shutil.rmtree(local)  # unlinks links found inside the tree, does not descend into them
    except FileNotFoundError:
        pass  # already gone


def _remove_stale_staging(base_dir: str, digest: str) -> None:
    for name in fileio.listdir(base_dir):
        name = name.rstrip("/")
        if name.startswith(f"{STAGING_PREFIX}{digest}-"):
            path = _join(base_dir, name)
            local = _local_path(path)
            if local is not None and os.path.islink(local):
                log.warning("removing the symbolic link %s (to %s) where a staging folder of this push would be; "
                            "its target is left alone", path, os.readlink(local))
            else:
                log.warning("removing %s, left by an earlier attempt of this push that did not finish", name)
            _remove(path)


def _check_destination(base_dir: str) -> None:
    """Refuses a destination that cannot hold versions: a dangling link, a link to a non-folder, a file."""
    local = _local_path(base_dir)
    local = local.rstrip("/") or "/" if local is not None else None  # "link/" would be read through the link
    if local is not None and os.path.islink(local):
        target = os.path.realpath(local)
        if not os.path.exists(local):
            raise ValueError(f"QuantizedModelPusher: push destination {base_dir} is a symlink to {target}, which "
                             f"does not exist; create {target} or point base_directory elsewhere")
        if not os.path.isdir(local):
            raise ValueError(f"QuantizedModelPusher: push destination {base_dir} is a symlink to {target}, which "
                             f"is not a directory; point base_directory at a directory")
        return  # a link to a folder: versions are published into the folder
    if fileio.exists(base_dir) and not fileio.isdir(base_dir):
        raise ValueError(f"QuantizedModelPusher: push destination {base_dir} exists and is a file, not a "
                         f"directory; remove it or point base_directory elsewhere")


def _destination_error(base_dir: str, doing: str, cause: BaseException) -> PushDestinationError:
    return PushDestinationError(
        f"QuantizedModelPusher: could not {doing} in push destination {base_dir}: {cause or type(cause).__name__}; "
        f"check that it is writable and has free space (nothing was published)")


def _check_extra_names(names: list[str]) -> None:
    """Refuses extra-file names that would leave the version folder or overwrite the model or the manifest."""
    for name in names:
        if any(part in ("", ".", "..") for part in name.split("/")) or "\\" in name:
            raise ValueError(f"QuantizedModelPusher: extra file name {name!r} must be a relative path inside the "
                             "version folder (no '..', no leading '/', no empty part)")
        if name in (MODEL_FILE, MANIFEST_FILE):
            raise ValueError(f"QuantizedModelPusher: extra file name {name!r} is reserved for the push itself")


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
    extra_files: Mapping[str, bytes] | None = None,
    on_staged: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Published:
    """Publishes ``model_bytes`` and ``manifest`` (plus ``version`` and ``push_key``) as a new version of ``base_dir``.

    Args:
      base_dir: the push destination's base directory (created if missing).
      model_bytes: the TFLite flatbuffer, written as ``model.tflite``.
      manifest: JSON-serializable facts about the push, written as ``manifest.json``.
      push_key: what identifies this push; a version already carrying it is reused instead of duplicated.
      extra_files: relative name (``/``-separated) -> bytes, written into the version before the manifest.
      on_staged: called with the staging folder once everything is written and before the rename. The
        atomicity test uses it to kill the process at the worst moment.
      clock: seconds since the epoch, for version names.
    """
    extra = dict(extra_files or {})
    _check_extra_names(list(extra))
    _check_destination(base_dir)
    try:
        fileio.makedirs(base_dir)
    except Exception as e:  # the plugins raise OSError or tf.errors.OpError
        raise PushDestinationError(
            f"QuantizedModelPusher: could not create push destination {base_dir}: {e or type(e).__name__}; "
            f"check that its parent folders exist and are writable") from e
    existing = find_published(base_dir, push_key)
    if existing is not None:
        log.info("version %s of %s already holds this push (same model and blessings): not publishing again",
                 existing, base_dir)
        return Published(existing, _join(base_dir, existing), reused=True)
    digest = _key_digest(push_key)
    try:
        _remove_stale_staging(base_dir, digest)
    except Exception as e:
        raise _destination_error(base_dir, "remove the staging folder an earlier attempt left", e) from e
    staging = _join(base_dir, f"{STAGING_PREFIX}{digest}-{uuid.uuid4().hex}")
    try:
        try:
            fileio.makedirs(staging)
            with fileio.open(_join(staging, MODEL_FILE), "wb") as f:
                f.write(model_bytes)
        except Exception as e:
            raise _destination_error(base_dir, f"write {MODEL_FILE} into {staging}", e) from e
        for name, data in sorted(extra.items()):
            path = _join(staging, name)
            try:
                fileio.makedirs(path.rsplit("/", 1)[0])
                with fileio.open(path, "wb") as f:
                    f.write(data)
            except Exception as e:
                raise _destination_error(base_dir, f"write {name} into {staging}", e) from e
        version = _next_version(base_dir, clock())
        while True:
            # The manifest goes last: on stores without atomic rename its presence marks a complete version.
            # Serialized first, so that a manifest that is not JSON is not reported as a destination error.
            text = strict_json.dumps({**manifest, "version": str(version), "push_key": dict(push_key)},
                                     indent=2, sort_keys=True)
            try:
                with fileio.open(_join(staging, MANIFEST_FILE), "w") as f:
                    f.write(text)
            except Exception as e:
                raise _destination_error(base_dir, f"write {MANIFEST_FILE} into {staging}", e) from e
            if on_staged is not None:
                on_staged(staging)
            final = _join(base_dir, str(version))
            if not fileio.exists(final):
                try:
                    fileio.rename(staging, final)
                    break
                except Exception as e:  # the plugins raise OSError or tf.errors.OpError
                    if not fileio.exists(final):  # only a lost race is ours to handle
                        raise _destination_error(base_dir, f"rename {staging} to {final}", e) from e
            # Another pusher took this version name between our check and the rename: take the next one.
            log.info("version %s of %s was taken concurrently; trying %s", version, base_dir, version + 1)
            version += 1
    except BaseException:
        # Leave nothing partial: the staging folder we created goes (the next attempt would remove it anyway).
        try:
            if _local_path(staging) is not None or fileio.exists(staging):
                _remove(staging)
        except Exception as cleanup:
            log.warning("could not remove %s after the failed push (%s); the next attempt of this push will",
                        staging, cleanup)
        raise
    log.info("published %d bytes of model, %d extra file(s) and its manifest as %s", len(model_bytes), len(extra),
             final)
    return Published(str(version), final, reused=False)
