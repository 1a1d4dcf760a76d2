"""Demo data that ships in a package: the Palmer penguins, written as the CSV that CsvExampleGen reads."""

from __future__ import annotations

import logging
import os

import palmerpenguins

from pipelines.models.penguin.penguin_trainer import FEATURE_KEYS, LABEL_KEY

SPECIES = ("Adelie", "Chinstrap", "Gentoo")
SLICE_KEYS = ("island", "sex")


def write_penguins_csv(data_root: str) -> str:
    """Writes the penguins with complete rows to ``<data_root>/penguins.csv`` and returns its path.

    The label is the species index (``SPECIES``); numeric features are written as floats so that
    SchemaGen infers FLOAT for all of them; ``island`` and ``sex`` are kept as strings for slicing.
    """
    frame = palmerpenguins.load_penguins().dropna()
    frame = frame.assign(**{LABEL_KEY: frame[LABEL_KEY].map(SPECIES.index)})
    frame = frame[[LABEL_KEY, *SLICE_KEYS, *FEATURE_KEYS]].astype({k: "float64" for k in FEATURE_KEYS})
    os.makedirs(data_root, exist_ok=True)
    path = os.path.join(data_root, "penguins.csv")
    frame.to_csv(path, index=False, float_format="%.1f")
    logging.info("wrote %d penguins to %s", len(frame), path)
    return path
