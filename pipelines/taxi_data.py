"""The Chicago taxi CSV that ships in the tfx wheel (15,000 rows), copied into a data root for CsvExampleGen.

Copied only when the content changes: TFX fingerprints an ExampleGen's input files by size and mtime, so rewriting
identical bytes would make CsvExampleGen and everything downstream re-execute (``pipelines.data.write_if_changed``).
"""

from __future__ import annotations

import logging
import os
from importlib import resources

from quantgate.pipelines.data import write_if_changed

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


def write_taxi_csv(data_root: str) -> str:
    """Copies the taxi CSV to ``<data_root>/taxi.csv`` unless an identical file is there (``write_if_changed``);
    returns its path."""
    with open(taxi_csv_source(), "rb") as f:
        content = f.read()
    path = os.path.join(data_root, CSV_NAME)
    if write_if_changed(path, content):
        logging.info("wrote the taxi CSV (%d bytes) to %s", len(content), path)
    else:
        logging.info("unchanged, kept %s (mtime untouched so TFX's cache holds)", path)
    return path
