"""TFX Trainer module for the Palmer penguins demo: a small Keras classifier that TFLite can quantize.

It exports two signatures:
- ``serving_default``: serialized ``tf.Example`` in (what TFX's Evaluator, Pusher and TF Serving expect);
- ``serving_features`` (``DENSE_SIGNATURE``): one ``[batch, 1]`` float32 input per feature, named exactly after
  the feature. This is what the Quantizer converts, so the TFLite model can be fed from tf.Examples by name.

Each feature is normalized on its own before the concatenation: an int8 ``Concatenation`` shares one scale across
its inputs, and un-normalized small features (bill depth ≈ 17) collapse next to large ones (body mass ≈ 4000).

This folder is packaged whole into the Trainer's user-module wheel: keep unrelated code out of it.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

FEATURE_KEYS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
LABEL_KEY = "species"
NUM_CLASSES = 3
DENSE_SIGNATURE = "serving_features"
TRAIN_BATCH_SIZE = 32
EVAL_BATCH_SIZE = 32


def _input_fn(file_pattern: list[str], data_accessor: tfx.components.DataAccessor,
              schema: schema_pb2.Schema, batch_size: int) -> tf.data.Dataset:
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY),
        schema,
    )
    return dataset.map(lambda features, label: ({k: tf.cast(features[k], tf.float32) for k in FEATURE_KEYS}, label))


def _build_model(train_dataset: tf.data.Dataset, hidden_units: int, learning_rate: float) -> keras.Model:
    inputs = {k: keras.layers.Input(shape=(1,), name=k, dtype=tf.float32) for k in FEATURE_KEYS}
    normalized = []
    for key in FEATURE_KEYS:
        norm = keras.layers.Normalization(axis=-1, name=f"norm_{key}")
        norm.adapt(train_dataset.map(lambda features, _label, key=key: features[key]).take(50))
        normalized.append(norm(inputs[key]))
    x = keras.layers.Concatenate()(normalized)
    x = keras.layers.Dense(hidden_units, activation="relu")(x)
    x = keras.layers.Dense(hidden_units, activation="relu")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def _serving_signatures(model: keras.Model) -> dict[str, tf.types.experimental.ConcreteFunction]:
    feature_spec = {k: tf.io.FixedLenFeature([1], tf.float32) for k in FEATURE_KEYS}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve_tf_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        features = tf.io.parse_example(serialized, feature_spec)
        return {"probabilities": model(features, training=False)}

    @tf.function(input_signature=[{k: tf.TensorSpec(shape=[None, 1], dtype=tf.float32, name=k) for k in FEATURE_KEYS}])
    def serve_features(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {"probabilities": model(features, training=False)}

    return {
        "serving_default": serve_tf_examples.get_concrete_function(),
        DENSE_SIGNATURE: serve_features.get_concrete_function(),
    }


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point. ``custom_config`` may set ``hidden_units``, ``learning_rate``, ``seed``."""
    config = fn_args.custom_config or {}
    keras.utils.set_random_seed(int(config.get("seed", 0)))
    schema = tfx.utils.parse_pbtxt_file(fn_args.schema_path, schema_pb2.Schema())
    train = _input_fn(fn_args.train_files, fn_args.data_accessor, schema, TRAIN_BATCH_SIZE)
    evaluation = _input_fn(fn_args.eval_files, fn_args.data_accessor, schema, EVAL_BATCH_SIZE)
    model = _build_model(train, int(config.get("hidden_units", 16)), float(config.get("learning_rate", 1e-2)))
    # TensorBoard logs go to the Trainer's model_run artifact, where TFX (and Vertex's TensorBoard) look for them.
    tensorboard = keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch")
    model.fit(train, steps_per_epoch=fn_args.train_steps, validation_data=evaluation,
              validation_steps=fn_args.eval_steps, callbacks=[tensorboard], verbose=2)
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=_serving_signatures(model))

