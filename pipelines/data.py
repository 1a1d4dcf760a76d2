"""Demo data that ships in a package: the Palmer penguins, written as the CSV that CsvExampleGen reads.

The CSV is written only when its content changes. TFX fingerprints an ExampleGen's input files by size and mtime,
so rewriting identical bytes would still make ``CsvExampleGen`` and everything downstream re-execute on every
``make demo``; keeping the file (and its mtime) untouched lets a re-run resume entirely from the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile

from quantgate.pipelines.models.penguin.penguin_trainer import FEATURE_KEYS, LABEL_KEY

SPECIES = ("Adelie", "Chinstrap", "Gentoo")
SLICE_KEYS = ("island", "sex")
CSV_NAME = "penguins.csv"


def render_penguins_csv() -> tuple[bytes, int]:
    """The CSV's bytes and its number of rows (the penguins with complete rows)."""
    import palmerpenguins  # the demo extra: only writing the penguin data needs it, not importing this module

    frame = palmerpenguins.load_penguins().dropna()
    frame = frame.assign(**{LABEL_KEY: frame[LABEL_KEY].map(SPECIES.index)})
    frame = frame[[LABEL_KEY, *SLICE_KEYS, *FEATURE_KEYS]].astype({k: "float64" for k in FEATURE_KEYS})
    return frame.to_csv(index=False, float_format="%.1f", lineterminator="\n").encode(), len(frame)


def _sha256_of_file(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()  # not hashlib.file_digest: the TFX image runs 3.10
    except FileNotFoundError:
        return None


def write_if_changed(path: str, content: bytes) -> bool:
    """Writes ``content`` to ``path`` unless the file already holds exactly these bytes; True when it wrote.

    An existing file with the same sha256 is kept as it is, mtime included, so that TFX's cache holds; otherwise the
    new content replaces it atomically (a temporary file in the same folder, then ``os.replace``). The parent folder
    is created when missing.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    if _sha256_of_file(path) == hashlib.sha256(content).hexdigest():
        return False
    name = os.path.basename(path)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o644)  # mkstemp creates 0600; keep the file readable as a plain write would
        os.replace(temp, path)
    except BaseException:
        try:
            os.remove(temp)
        except FileNotFoundError:
            pass
        raise
    return True


def write_penguins_csv(data_root: str) -> str:
    """Writes the penguins with complete rows to ``<data_root>/penguins.csv`` and returns its path.

    The label is the species index (``SPECIES``); numeric features are written as floats so that
    SchemaGen infers FLOAT for all of them; ``island`` and ``sex`` are kept as strings for slicing.

    Written with ``write_if_changed``: identical bytes leave the file and its mtime untouched.
    """
    content, rows = render_penguins_csv()
    path = os.path.join(data_root, CSV_NAME)
    if write_if_changed(path, content):
        logging.info("wrote %d penguins to %s", rows, path)
    else:
        logging.info("unchanged, kept %s (%d penguins; mtime untouched so TFX's cache holds)", path, rows)
    return path
