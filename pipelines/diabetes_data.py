"""scikit-learn's bundled diabetes data (442 patients, ten raw features, no download), written as the CSV that
CsvExampleGen reads; only when its content changes (``pipelines.data.write_if_changed``: TFX's cache holds)."""

from __future__ import annotations

import logging
import os

from sklearn.datasets import load_diabetes

from quantgate.pipelines.data import write_if_changed
from quantgate.pipelines.models.diabetes.diabetes_trainer import FEATURE_KEYS, LABEL_KEY

CSV_NAME = "diabetes.csv"


def render_diabetes_csv() -> tuple[bytes, int]:
    """The CSV's bytes and its number of rows: the label (disease progression after one year) and the raw features
    (``scaled=False``: years, sex 1/2, bmi, blood pressure, serum values), all as floats (SchemaGen infers FLOAT)."""
    frame = load_diabetes(scaled=False, as_frame=True).frame.rename(columns={"target": LABEL_KEY})
    frame = frame[[LABEL_KEY, *FEATURE_KEYS]].astype("float64")
    return frame.to_csv(index=False, lineterminator="\n").encode(), len(frame)


def write_diabetes_csv(data_root: str) -> str:
    """Writes ``<data_root>/diabetes.csv`` unless an identical file is there; returns its path."""
    content, rows = render_diabetes_csv()
    path = os.path.join(data_root, CSV_NAME)
    if write_if_changed(path, content):
        logging.info("wrote %d diabetes patients to %s", rows, path)
    else:
        logging.info("unchanged, kept %s (%d patients; mtime untouched so TFX's cache holds)", path, rows)
    return path
