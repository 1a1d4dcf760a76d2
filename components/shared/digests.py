"""sha256 of files and bytes, the one way every quantgate component fingerprints what it writes or reads."""

from __future__ import annotations

import hashlib

from tfx.dsl.io import fileio

_CHUNK_BYTES = 1 << 20


def bytes_sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str) -> str:
    """Hex sha256 of a file, read in chunks through ``fileio`` (``gs://`` works as a local path does)."""
    digest = hashlib.sha256()
    with fileio.open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
