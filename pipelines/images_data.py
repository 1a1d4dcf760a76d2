"""The image demo data: scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download) as PNG files in
tf.Examples, the way TFX's image examples store images: ``image`` (the encoded PNG bytes, 32x32 RGB) and ``label``
(the digit, 0-9). Transform decodes them (``pipelines/models/images/image_transform.py``).

Written as one gzipped TFRecord for ImportExampleGen, only when the bytes change (``pipelines.data.write_if_changed``)
so TFX's cache holds across runs. ``render_image_records(n)`` makes any number of records (the benchmark's
thousands): past the 1,797 digits it cycles through them again, each copy of a digit shifted by its own offset of
up to ``MAX_SHIFT`` pixels (a seeded choice), so the copies are other images, not repeated bytes.
"""

from __future__ import annotations

import logging
import os
import tempfile

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

from quantgate.pipelines.data import write_if_changed
from quantgate.pipelines.models.images.image_transform import CHANNELS, IMAGE_KEY, IMAGE_SIZE, LABEL_KEY

TFRECORD_NAME = "images.tfrecord.gz"
MAX_SHIFT = 3  # pixels (of 32) a cycled copy moves: the digit stays inside the frame


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """The digits upscaled to uint8 ``[n, IMAGE_SIZE, IMAGE_SIZE, CHANNELS]`` (bilinear; gray in every channel) and
    their labels."""
    digits = load_digits()
    gray = digits.images.astype(np.float32)[..., None] * (255.0 / 16.0)  # 0-16 ink levels -> 0-255
    resized = tf.image.resize(gray, [IMAGE_SIZE, IMAGE_SIZE], method="bilinear").numpy()
    images = np.clip(np.round(resized), 0, 255).astype(np.uint8)
    return np.repeat(images, CHANNELS, axis=-1), digits.target.astype(np.int64)


def example(png: bytes, label: int) -> bytes:
    """One serialized tf.Example: ``image`` (PNG bytes) and ``label``."""
    return tf.train.Example(features=tf.train.Features(feature={
        IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
        LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    })).SerializeToString()


def render_image_records(num_examples: int | None = None, seed: int = 0) -> list[bytes]:
    """``num_examples`` serialized tf.Examples (default: the 1,797 digits once, unshifted); deterministic."""
    images, labels = digit_images()
    n = len(labels) if num_examples is None else num_examples
    shifts = [(dy, dx) for dy in range(-MAX_SHIFT, MAX_SHIFT + 1) for dx in range(-MAX_SHIFT, MAX_SHIFT + 1)
              if (dy, dx) != (0, 0)]
    if n > len(labels) * (len(shifts) + 1):
        raise ValueError(f"num_examples {n}: at most {len(labels) * (len(shifts) + 1)} distinct shifted digits")
    # Per cycle, one seeded order of the offsets: copy c of digit j takes offset order[(c - 1 + j) % len]
    # (distinct for each of a digit's copies).
    order = np.random.default_rng(seed).permutation(len(shifts))
    records = []
    for i in range(n):
        cycle, j = divmod(i, len(labels))
        image = images[j]
        if cycle:
            dy, dx = shifts[order[(cycle - 1 + j) % len(shifts)]]
            image = np.roll(image, (dy, dx), axis=(0, 1))
        records.append(example(tf.io.encode_png(image).numpy(), int(labels[j])))
    return records


def tfrecord_bytes(records: list[bytes]) -> bytes:
    """``records`` as the bytes of a gzipped TFRecord file (deterministic: TF's gzip header carries no mtime)."""
    with tempfile.TemporaryDirectory(prefix="quantgate-images-") as tmp:
        path = os.path.join(tmp, TFRECORD_NAME)
        with tf.io.TFRecordWriter(path, options=tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
            for record in records:
                writer.write(record)
        with open(path, "rb") as f:
            return f.read()


def write_image_examples(data_root: str, num_examples: int | None = None) -> str:
    """Writes the PNG tf.Examples to ``<data_root>/images.tfrecord.gz`` (unless identical bytes are there) and
    returns its path."""
    records = render_image_records(num_examples)
    path = os.path.join(data_root, TFRECORD_NAME)
    if write_if_changed(path, tfrecord_bytes(records)):
        logging.info("wrote %d PNG digits to %s", len(records), path)
    else:
        logging.info("unchanged, kept %s (%d PNG digits; mtime untouched so TFX's cache holds)", path, len(records))
    return path
