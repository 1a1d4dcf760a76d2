"""The digits demo data: scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download), written as
tf.Examples for ImportExampleGen: ``pixels`` (64 floats, 0-16, row by row) and ``label`` (the digit, 0-9).

One vector feature, not 64 CSV columns: the Trainer reshapes it into an image, and the Quantizer's dense signature
has one ``[batch, 64]`` input. Written only when the bytes change (``pipelines.data.write_if_changed``), so TFX's
cache holds across runs.
"""

from __future__ import annotations

import logging
import os
import tempfile

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

from quantgate.pipelines.data import write_if_changed
from quantgate.pipelines.models.digits.digits_trainer import FEATURE_KEY, LABEL_KEY

TFRECORD_NAME = "digits.tfrecord"


def render_digits_examples() -> tuple[bytes, int]:
    """The digits as an uncompressed TFRecord of serialized tf.Examples (deterministic bytes) and its record count."""
    digits = load_digits()
    pixels, labels = digits.data.astype(np.float32), digits.target.astype(np.int64)
    with tempfile.TemporaryDirectory(prefix="quantgate-digits-") as tmp:
        path = os.path.join(tmp, TFRECORD_NAME)
        with tf.io.TFRecordWriter(path) as writer:
            for image, label in zip(pixels, labels, strict=True):
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    FEATURE_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=image)),
                    LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                })).SerializeToString())
        with open(path, "rb") as f:
            return f.read(), len(labels)


def write_digits_examples(data_root: str) -> str:
    """Writes the digits to ``<data_root>/digits.tfrecord`` (unless identical bytes are there) and returns its path."""
    content, rows = render_digits_examples()
    path = os.path.join(data_root, TFRECORD_NAME)
    if write_if_changed(path, content):
        logging.info("wrote %d digits to %s", rows, path)
    else:
        logging.info("unchanged, kept %s (%d digits; mtime untouched so TFX's cache holds)", path, rows)
    return path
