"""The Chicago taxi CSV that ships in the tfx wheel (15,000 rows), copied into a data root for CsvExampleGen.

Copied only when the content changes: TFX fingerprints an ExampleGen's input files by size and mtime, so rewriting
identical bytes would make CsvExampleGen and everything downstream re-execute (the pattern of ``pipelines/data.py``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from importlib import resources

TAXI_PACKAGE = "tfx.examples.chicago_taxi_pipeline"
TAXI_RESOURCE = ("data", "simple", "data.csv")
CSV_NAME = "taxi.csv"


def taxi_csv_source() -> str:
    """The path of the taxi CSV inside the installed tfx package."""
    path = resources.files(TAXI_PACKAGE).joinpath(*TAXI_RESOURCE)
    if not path.is_file():
        raise FileNotFoundError(
            f"the tfx package has no {'/'.join(TAXI_RESOURCE)} under {TAXI_PACKAGE} ({path}); install tfx==1.16.0 "
            "from the lock (make venv), whose wheel ships the Chicago taxi sample")
    return str(path)


def _sha256_of_file(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()  # not hashlib.file_digest: the TFX image runs 3.10
    except FileNotFoundError:
        return None


def write_taxi_csv(data_root: str) -> str:
    """Copies the taxi CSV to ``<data_root>/taxi.csv`` unless an identical file is there; returns its path.

    An existing file with the same sha256 is kept as it is, mtime included, so that TFX's cache holds; otherwise the
    new content replaces it atomically (a temporary file in the same folder, then ``os.replace``).
    """
    with open(taxi_csv_source(), "rb") as f:
        content = f.read()
    os.makedirs(data_root, exist_ok=True)
    path = os.path.join(data_root, CSV_NAME)
    if _sha256_of_file(path) == hashlib.sha256(content).hexdigest():
        logging.info("unchanged, kept %s (mtime untouched so TFX's cache holds)", path)
        return path
    fd, temp = tempfile.mkstemp(dir=data_root, prefix=f".{CSV_NAME}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o644)  # mkstemp creates 0600
        os.replace(temp, path)
    except BaseException:
        try:
            os.remove(temp)
        except FileNotFoundError:
            pass
        raise
    logging.info("wrote the taxi CSV (%d bytes) to %s", len(content), path)
    return path
