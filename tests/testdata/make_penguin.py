"""Regenerates tests/testdata/penguin/: the golden inputs of the components' unit tests (fixture
``penguin_artifacts`` in tests/components/conftest.py), so that they need no pipeline run and no training.

- ``examples/``: the demo's penguins as CsvExampleGen writes them: ``Split-train`` and ``Split-eval`` (every third row),
  one gzipped TFRecord each, ``species`` int64, ``island``/``sex`` bytes, the four measurements float.
- ``model/Format-Serving``: a model built and trained by the demo Trainer module's own code
  (``pipelines/models/penguin/penguin_trainer.py``: ``_build_model``, 200 steps as the tests' demo run, and its
  ``serving_default`` + ``serving_features`` signatures), saved as the Trainer saves it.

Run it from the repository root when the Trainer module or the demo data change:
``TF_USE_LEGACY_KERAS=1 .venv/bin/python tests/testdata/make_penguin.py``. About 250 KB; deterministic up to
TensorFlow's own nondeterminism.
"""

from __future__ import annotations

import csv
import io
import os
import shutil

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from quantgate.pipelines.data import SLICE_KEYS, render_penguins_csv  # noqa: E402
from quantgate.pipelines.models.penguin import penguin_trainer as trainer  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "penguin")
TRAIN_STEPS = 200  # as the tests' demo run (tests/conftest.py): about 0.97-0.99 eval accuracy
RECORD_FILE = "data_tfrecord-00000-of-00001.gz"


def _feature(value: int | float | bytes) -> tf.train.Feature:
    if isinstance(value, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    if isinstance(value, int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))


def penguin_records() -> dict[str, list[bytes]]:
    """The demo CSV's rows as tf.Examples (typed as CsvExampleGen infers them), split 2:1 by row index."""
    content, _ = render_penguins_csv()
    splits: dict[str, list[bytes]] = {"train": [], "eval": []}
    for i, row in enumerate(csv.DictReader(io.StringIO(content.decode()))):
        features = {trainer.LABEL_KEY: _feature(int(row[trainer.LABEL_KEY]))}
        features.update({k: _feature(row[k].encode()) for k in SLICE_KEYS})
        features.update({k: _feature(float(row[k])) for k in trainer.FEATURE_KEYS})
        example = tf.train.Example(features=tf.train.Features(feature=features))
        splits["eval" if i % 3 == 2 else "train"].append(example.SerializeToString())
    return splits


def train_model(records: list[bytes], serving_model_dir: str) -> None:
    keras.utils.set_random_seed(0)
    spec = {k: tf.io.FixedLenFeature([1], tf.float32) for k in trainer.FEATURE_KEYS}
    spec[trainer.LABEL_KEY] = tf.io.FixedLenFeature([1], tf.int64)
    parsed = tf.io.parse_example(records, spec)
    label = parsed.pop(trainer.LABEL_KEY)
    train = tf.data.Dataset.from_tensor_slices((parsed, label)).shuffle(len(records), seed=0).repeat().batch(
        trainer.TRAIN_BATCH_SIZE)
    model = trainer._build_model(train, hidden_units=16, learning_rate=1e-2)
    model.fit(train, steps_per_epoch=TRAIN_STEPS, verbose=0)
    model.save(serving_model_dir, save_format="tf", signatures=trainer._serving_signatures(model))


def main() -> None:
    shutil.rmtree(ROOT, ignore_errors=True)
    splits = penguin_records()
    for split, records in splits.items():
        split_dir = os.path.join(ROOT, "examples", f"Split-{split}")
        os.makedirs(split_dir)
        with tf.io.TFRecordWriter(os.path.join(split_dir, RECORD_FILE), "GZIP") as writer:
            for record in records:
                writer.write(record)
    train_model(splits["train"], os.path.join(ROOT, "model", "Format-Serving"))
    shutil.rmtree(os.path.join(ROOT, "model", "Format-Serving", "assets"), ignore_errors=True)  # empty; git keeps none
    print(f"wrote {ROOT}: {', '.join(f'{k} {len(v)}' for k, v in splits.items())} examples")


if __name__ == "__main__":
    main()
