"""Taxi-like benchmark inputs: N gzipped tf.Examples in an Examples artifact, a small Keras MLP exported as a float
SavedModel with a dense signature, and its int8 TFLite model converted through the Quantizer's own code path.

The examples carry what the Chicago taxi ones do: dense floats, integer hours, string categories, a binary label
(``big_tipper``); the model reads 8 of the 15 features, the evaluator slices on ``payment_type``.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from tfx.types import Artifact, standard_artifacts

from quantgate.components.quantizer import tflite_engine
from quantgate.components.quantizer.isolation import run_isolated
from quantgate.components.quantizer.options import resolve_options
from quantgate.components.shared.signature_inputs import dense_signature_specs, examples_to_inputs

FLOAT_INPUTS = ["trip_miles", "fare", "trip_seconds", "pickup_latitude", "pickup_longitude", "dropoff_latitude",
                "dropoff_longitude"]
INT_INPUTS = ["trip_start_hour"]
LABEL = "big_tipper"
SLICE = "payment_type"
SIGNATURE = "serving_features"
RECORDS_PER_FILE = 250_000  # ExampleGen writes several shards for a big split
PAYMENT_TYPES = [b"Cash", b"Credit Card", b"No Charge", b"Unknown", b"Dispute", b"Mobile", b"Prcard"]
COMPANIES = [f"Company {i}".encode() for i in range(40)]


def _columns(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols = {
        "trip_miles": rng.gamma(1.5, 2.0, n), "fare": rng.gamma(2.0, 6.0, n), "trip_seconds": rng.gamma(2.0, 400.0, n),
        "pickup_latitude": 41.88 + rng.normal(0, 0.05, n), "pickup_longitude": -87.63 + rng.normal(0, 0.05, n),
        "dropoff_latitude": 41.88 + rng.normal(0, 0.05, n), "dropoff_longitude": -87.63 + rng.normal(0, 0.05, n),
        "trip_start_hour": rng.integers(0, 24, n), "trip_start_day": rng.integers(1, 8, n),
        "trip_start_month": rng.integers(1, 13, n), "pickup_community_area": rng.integers(1, 78, n),
        "dropoff_community_area": rng.integers(1, 78, n), "tips": rng.gamma(1.0, 2.0, n),
        SLICE: rng.choice(PAYMENT_TYPES, n, p=[0.4, 0.45, 0.03, 0.04, 0.02, 0.04, 0.02]),
        "company": rng.choice(COMPANIES, n),
    }
    cols[LABEL] = ((cols["tips"] > 0.2 * cols["fare"]) & (cols[SLICE] == b"Credit Card")).astype(np.int64)
    return cols


def _example(cols: dict[str, np.ndarray], i: int) -> bytes:
    feature = {}
    for name, values in cols.items():
        value = values[i]
        if values.dtype.kind == "f":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        elif values.dtype.kind in "iu":
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        else:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_examples(root: str, n: int, split: str = "eval") -> Artifact:
    """An Examples artifact at ``root`` whose ``split`` holds ``n`` gzipped tf.Examples (files of at most
    ``RECORDS_PER_FILE``); generated once and reused when ``root`` already holds them."""
    examples = standard_artifacts.Examples()
    examples.uri = root
    examples.split_names = f'["{split}"]'
    examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
    examples.id = 1
    folder = os.path.join(root, f"Split-{split}")
    done = os.path.join(folder, ".done")
    if os.path.exists(done):
        return examples
    os.makedirs(folder, exist_ok=True)
    cols = _columns(n, seed=n)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for shard, start in enumerate(range(0, n, RECORDS_PER_FILE)):
        path = os.path.join(folder, f"data_tfrecord-{shard:05d}-of-{(n - 1) // RECORDS_PER_FILE + 1:05d}.gz")
        with tf.io.TFRecordWriter(path, options) as writer:
            for i in range(start, min(n, start + RECORDS_PER_FILE)):
                writer.write(_example(cols, i))
    open(done, "w").close()
    return examples


def _train_and_export(export_dir: str, records: list[bytes]) -> None:
    import tf_keras as keras

    names = FLOAT_INPUTS + INT_INPUTS
    inputs = {name: keras.Input((1,), name=name, dtype=tf.float32) for name in names}
    parsed = tf.io.parse_example(records, {
        **{n: tf.io.FixedLenFeature([1], tf.float32) for n in FLOAT_INPUTS},
        **{n: tf.io.FixedLenFeature([1], tf.int64) for n in INT_INPUTS},
        LABEL: tf.io.FixedLenFeature([1], tf.int64)})
    features = {n: tf.cast(parsed[n], tf.float32) for n in names}
    # One normalization per input, before the concatenation: each int8 input then gets its own scale (a
    # concatenation of raw inputs forces one scale on all, which flattens the latitudes to one value).
    normalized = []
    for name in names:
        layer = keras.layers.Normalization()
        layer.adapt(features[name])
        normalized.append(layer(inputs[name]))
    x = keras.layers.Concatenate()(normalized)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="probabilities")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "binary_crossentropy")
    model.fit(features, tf.cast(parsed[LABEL], tf.float32), epochs=3, batch_size=256, verbose=0)

    @tf.function(input_signature=[{n: tf.TensorSpec([None, 1], tf.float32, name=n) for n in inputs}])
    def serving_features(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {"probabilities": model(features)}

    tf.saved_model.save(model, export_dir, signatures={SIGNATURE: serving_features})


def _convert(saved_model_dir: str, records: list[bytes]) -> bytes:
    _, specs = dense_signature_specs(saved_model_dir, SIGNATURE)
    calibration = examples_to_inputs(records, specs, source="benchmark calibration")
    return tflite_engine.convert(saved_model_dir, SIGNATURE, resolve_options("int8"), calibration)


def write_models(root: str, examples: Artifact) -> tuple[Artifact, Artifact]:
    """The float ``Model`` artifact and the int8 ``quantized_model`` (``Format-Serving/model.tflite``, converted in
    the Quantizer's isolated child as the Quantizer does), trained on the first 20k examples; reused when present."""
    model, quantized = standard_artifacts.Model(), standard_artifacts.Model()
    model.uri, quantized.uri = os.path.join(root, "model"), os.path.join(root, "quantized")
    model.id, quantized.id = 2, 3
    saved_model_dir = os.path.join(model.uri, "Format-Serving")
    tflite_path = os.path.join(quantized.uri, "Format-Serving", "model.tflite")
    if not os.path.exists(tflite_path):
        files = sorted(tf.io.gfile.glob(os.path.join(examples.uri, "Split-eval", "*.gz")))
        records = [r.numpy() for r in tf.data.TFRecordDataset(files[:1], compression_type="GZIP").take(20_000)]
        _train_and_export(saved_model_dir, records)
        content = run_isolated(_convert, {"saved_model_dir": saved_model_dir, "records": records[:1000]},
                               what="benchmark int8 conversion")
        os.makedirs(os.path.dirname(tflite_path), exist_ok=True)
        with open(tflite_path, "wb") as f:
            f.write(content)
    return model, quantized
