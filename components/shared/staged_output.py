"""Publishing an artifact's files all at once: write into ``<uri>/.staging``, move the entries in order, clean up.

Every quantgate executor that writes files into its output artifact uses this, so a failed or killed run never
leaves a half-written artifact that looks complete: the entry moved last (a manifest, ``metrics.json``) marks the
artifact complete, and readers require it. (The pusher's publish into a push destination is a different protocol:
an atomic directory rename, see ``components/quantized_model_pusher/publish.py``.) Files go through ``tfx.dsl.io.fileio``, so
``gs://`` URIs work as local paths do.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

from tfx.dsl.io import fileio

STAGING_DIRNAME = ".staging"

log = logging.getLogger(__name__)


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def _remove(path: str) -> None:
    if fileio.isdir(path):
        fileio.rmtree(path)
    elif fileio.exists(path):
        fileio.remove(path)


@contextlib.contextmanager
def staged_output(uri: str, publish_order: Sequence[str]) -> Iterator[str]:
    """Yields a fresh staging folder inside ``uri``; on success moves ``publish_order``'s entries into ``uri``.

    Write every file (or folder) of the artifact into the yielded folder. When the block ends without an
    exception, each name in ``publish_order`` is moved to ``<uri>/<name>`` in that order (an existing entry of the
    same name is replaced), so put the entry that marks completeness last. Whatever happens, the staging folder
    is removed at the end: anything else written there (Beam temp files, say) is discarded. A staging folder left
    by a killed earlier attempt is removed before the block starts.

    Raises:
      FileNotFoundError: an entry of ``publish_order`` was not written (nothing is moved then).
    """
    staging = _join(uri, STAGING_DIRNAME)
    if fileio.exists(staging):
        log.info("removing %s, left by an earlier attempt that did not finish", staging)
        fileio.rmtree(staging)
    fileio.makedirs(staging)
    try:
        yield staging
        missing = [name for name in publish_order if not fileio.exists(_join(staging, name))]
        if missing:
            raise FileNotFoundError(f"{uri}: the staged output lacks {missing}; nothing was published")
        moved: list[str] = []
        try:
            for name in publish_order:
                target = _join(uri, name)
                _remove(target)
                fileio.rename(_join(staging, name), target)
                moved.append(target)
        except Exception:
            # A store without atomic renames can fail midway: take back what was moved, so no part stays behind.
            for target in moved:
                _remove(target)
            raise
    finally:
        if fileio.exists(staging):
            fileio.rmtree(staging)
