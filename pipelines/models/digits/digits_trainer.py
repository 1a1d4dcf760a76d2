"""TFX Trainer module for the digits QAT pipeline: a small CNN over scikit-learn's 8x8 digits, trained float, and
its quantization-aware fine-tune (``components/shared/qat.py``).

One ``run_fn`` for both Trainers of ``pipelines/digits_qat.py``: without a base model it trains the float CNN; with
``base_model`` (the float Trainer's model) it loads it, makes it quantization-aware, fine-tunes it a few epochs and
saves it with the same signatures:
- ``serving_default``: serialized ``tf.Example`` in (TFX's Evaluator);
- ``serving_features`` (``DENSE_SIGNATURE``): ``pixels``, ``[batch, 64]`` float32 (raw 0-16 values), what the
  Quantizer converts.

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
BATCH_SIZE = 32


def _input_fn(file_pattern: list[str], data_accessor: tfx.components.DataAccessor, schema: schema_pb2.Schema,
              batch_size: int) -> tf.data.Dataset:
    dataset = data_accessor.tf_dataset_factory(
        file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY), schema)
    return dataset.map(lambda features, label: (tf.cast(features[FEATURE_KEY], tf.float32), label))


def build_model(conv_filters: int, hidden_units: int, learning_rate: float) -> keras.Model:
    """The float CNN: every layer is one tfmot wraps (Reshape, Conv2D, MaxPooling2D, Flatten, Dense)."""
    pixels = keras.layers.Input(shape=(NUM_PIXELS,), name=FEATURE_KEY, dtype=tf.float32)
    x = keras.layers.Reshape((8, 8, 1))(pixels)
    x = keras.layers.Conv2D(conv_filters, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hidden_units, activation="relu")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs=pixels, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    return model


def serving_signatures(model: keras.Model) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """``serving_default`` (tf.Examples) and ``DENSE_SIGNATURE`` (``pixels``) over ``model``, float or QAT."""
    feature_spec = {FEATURE_KEY: tf.io.FixedLenFeature([NUM_PIXELS], tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve_tf_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        features = tf.io.parse_example(serialized, feature_spec)
        return {"probabilities": model(features[FEATURE_KEY], training=False)}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None, NUM_PIXELS], dtype=tf.float32, name=FEATURE_KEY)])
    def serve_features(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model(pixels, training=False)}

    return {"serving_default": serve_tf_examples.get_concrete_function(),
            DENSE_SIGNATURE: serve_features.get_concrete_function()}


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point. ``custom_config``: ``conv_filters``, ``hidden_units``, ``learning_rate``, ``seed``;
    for the QAT fine-tune (with ``base_model``) ``qat_epochs`` and ``qat_learning_rate``."""
    config = fn_args.custom_config or {}
    keras.utils.set_random_seed(int(config.get("seed", 0)))
    schema = tfx.utils.parse_pbtxt_file(fn_args.schema_path, schema_pb2.Schema())
    train = _input_fn(fn_args.train_files, fn_args.data_accessor, schema, BATCH_SIZE)
    evaluation = _input_fn(fn_args.eval_files, fn_args.data_accessor, schema, BATCH_SIZE)
    if fn_args.base_model:
        # Imported here: only the QAT Trainer needs tfmot.
        from quantgate.components.shared import qat

        float_model = keras.models.load_model(fn_args.base_model)
        steps = max(1, fn_args.train_steps // int(config.get("qat_epochs", 2)))
        qat.train_quantization_aware(
            float_model, train.repeat(), fn_args.serving_model_dir, serving_signatures, DENSE_SIGNATURE,
            loss=keras.losses.SparseCategoricalCrossentropy(), metrics=[keras.metrics.SparseCategoricalAccuracy()],
            epochs=int(config.get("qat_epochs", 2)), steps_per_epoch=steps,
            learning_rate=float(config.get("qat_learning_rate", 1e-3)),
            validation_data=evaluation, validation_steps=fn_args.eval_steps)
        return
    model = build_model(int(config.get("conv_filters", 8)), int(config.get("hidden_units", 32)),
                        float(config.get("learning_rate", 3e-3)))
    tensorboard = keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch")
    model.fit(train, steps_per_epoch=fn_args.train_steps, validation_data=evaluation,
              validation_steps=fn_args.eval_steps, callbacks=[tensorboard], verbose=2)
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=serving_signatures(model))
