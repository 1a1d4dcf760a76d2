"""TFX Trainer module for the default demo (``pipelines/digits_cnn.py``): a CNN over scikit-learn's 8x8 digits sized
so its weights dominate the model file, which is where int8 pays.

Conv2D 32 -> Conv2D 64 -> max-pool -> Dense 128 -> Dense 10: about 151,000 weights (0.6 MB as float32, 0.15 MB as
int8), so the int8 TFLite is about 4x smaller than the float32 TFLite of the same function; the penguin demo's
MLP holds a few hundred weights and its int8 file is no smaller than its float one (the flatbuffer's fixed cost
and the quantization parameters eat the saving).

Signatures, as the digits QAT Trainer's (``pipelines/models/digits``):
- ``serving_default``: serialized ``tf.Example`` in (TFX's Evaluator);
- ``serving_features`` (``DENSE_SIGNATURE``): ``pixels``, ``[batch, 64]`` float32 (raw 0-16 values), what the
  Quantizer converts and the QuantizationEvaluator scores.

This folder is packaged whole into the Trainer's user-module wheel: keep unrelated code out of it.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

FEATURE_KEY = "pixels"
LABEL_KEY = "label"
NUM_PIXELS = 64
NUM_CLASSES = 10
DENSE_SIGNATURE = "serving_features"
OUTPUT_KEY = "probabilities"
BATCH_SIZE = 32
# custom_config defaults: the layer widths above, Adam's rate, the seed of the weights and of the shuffle.
DEFAULT_CONFIG = {"conv_filters": [32, 64], "hidden_units": 128, "learning_rate": 2e-3, "seed": 0}


def _input_fn(file_pattern: list[str], data_accessor: tfx.components.DataAccessor, schema: schema_pb2.Schema,
              batch_size: int, seed: int) -> tf.data.Dataset:
    dataset = data_accessor.tf_dataset_factory(
        file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY, shuffle_seed=seed),
        schema)
    return dataset.map(lambda features, label: (tf.cast(features[FEATURE_KEY], tf.float32), label))


def build_model(conv_filters: tuple[int, ...] = (32, 64), hidden_units: int = 128,
                learning_rate: float = 2e-3) -> keras.Model:
    """The float CNN. Pixels are 0-16: scaled to 0-1 inside the model, so the exported function takes raw pixels
    (what the tf.Examples hold, what calibration and the evaluator feed)."""
    pixels = keras.layers.Input(shape=(NUM_PIXELS,), name=FEATURE_KEY, dtype=tf.float32)
    x = keras.layers.Rescaling(1.0 / 16.0)(pixels)
    x = keras.layers.Reshape((8, 8, 1))(x)
    for filters in conv_filters:
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hidden_units, activation="relu")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name=OUTPUT_KEY)(x)
    model = keras.Model(inputs=pixels, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    return model


def serving_signatures(model: keras.Model) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """``serving_default`` (tf.Examples) and ``DENSE_SIGNATURE`` (``pixels``) over ``model``."""
    feature_spec = {FEATURE_KEY: tf.io.FixedLenFeature([NUM_PIXELS], tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve_tf_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        features = tf.io.parse_example(serialized, feature_spec)
        return {OUTPUT_KEY: model(features[FEATURE_KEY], training=False)}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None, NUM_PIXELS], dtype=tf.float32, name=FEATURE_KEY)])
    def serve_features(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_KEY: model(pixels, training=False)}

    return {"serving_default": serve_tf_examples.get_concrete_function(),
            DENSE_SIGNATURE: serve_features.get_concrete_function()}


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point. ``custom_config``: ``conv_filters`` (a list), ``hidden_units``, ``learning_rate``,
    ``seed`` (``DEFAULT_CONFIG``)."""
    config = {**DEFAULT_CONFIG, **(fn_args.custom_config or {})}
    seed = int(config["seed"])
    keras.utils.set_random_seed(seed)
    schema = tfx.utils.parse_pbtxt_file(fn_args.schema_path, schema_pb2.Schema())
    train = _input_fn(fn_args.train_files, fn_args.data_accessor, schema, BATCH_SIZE, seed)
    evaluation = _input_fn(fn_args.eval_files, fn_args.data_accessor, schema, BATCH_SIZE, seed)
    model = build_model(tuple(int(f) for f in config["conv_filters"]), int(config["hidden_units"]),
                        float(config["learning_rate"]))
    model.fit(train, steps_per_epoch=fn_args.train_steps, validation_data=evaluation,
              validation_steps=fn_args.eval_steps, verbose=2)
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=serving_signatures(model))
