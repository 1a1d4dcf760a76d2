"""TFX Trainer module for the diabetes regressor: a small Keras MLP over the ten raw features of scikit-learn's
bundled ``load_diabetes`` data (``scaled=False``: age in years, sex 1/2, bmi, blood pressure, six serum values).

The raw features are concatenated first and normalized together inside the model, as a new user would write it.
That is what makes int8 with int8 inputs lose accuracy here: an int8 ``Concatenation`` gives all its inputs one
scale, fitted to the widest feature (s1, up to ~300), so the narrow ones (sex, s4, s5) keep a level or two of their
spread (the case the Quantizer's accuracy-aware search exists for).

Signatures as in the penguin module: ``serving_default`` (serialized tf.Examples) and ``serving_features``
(``DENSE_SIGNATURE``: one ``[batch, 1]`` float32 input per feature, named after it; output ``prediction``).

This folder is packaged whole into the Trainer's user-module wheel: keep unrelated code out of it.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

FEATURE_KEYS = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
LABEL_KEY = "progression"
DENSE_SIGNATURE = "serving_features"
OUTPUT_NAME = "prediction"
TRAIN_BATCH_SIZE = 32
EVAL_BATCH_SIZE = 32


def _input_fn(file_pattern: list[str], data_accessor: tfx.components.DataAccessor,
              schema: schema_pb2.Schema, batch_size: int) -> tf.data.Dataset:
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY),
        schema,
    )
    return dataset.map(lambda features, label: ({k: tf.cast(features[k], tf.float32) for k in FEATURE_KEYS},
                                                tf.cast(label, tf.float32)))


def build_model(train_dataset: tf.data.Dataset, hidden_units: int, learning_rate: float,
                label_mean: float) -> keras.Model:
    """Raw features concatenated, then one ``Normalization`` over the vector, two ReLU layers, a linear output
    (its bias started at the label's mean)."""
    inputs = {k: keras.layers.Input(shape=(1,), name=k, dtype=tf.float32) for k in FEATURE_KEYS}
    x = keras.layers.Concatenate(name="raw_features")([inputs[k] for k in FEATURE_KEYS])
    norm = keras.layers.Normalization(axis=-1, name="normalize")
    norm.adapt(train_dataset.map(lambda features, _label: tf.concat([features[k] for k in FEATURE_KEYS], axis=1)))
    x = norm(x)
    x = keras.layers.Dense(hidden_units, activation="relu")(x)
    x = keras.layers.Dense(hidden_units, activation="relu")(x)
    outputs = keras.layers.Dense(1, name=OUTPUT_NAME, bias_initializer=keras.initializers.Constant(label_mean))(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=keras.losses.MeanSquaredError(),
                  metrics=[keras.metrics.MeanAbsoluteError()])
    return model


def serving_signatures(model: keras.Model) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """``serving_default`` over serialized tf.Examples and ``serving_features`` over one dense input per feature."""
    feature_spec = {k: tf.io.FixedLenFeature([1], tf.float32) for k in FEATURE_KEYS}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve_tf_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        features = tf.io.parse_example(serialized, feature_spec)
        return {OUTPUT_NAME: model(features, training=False)}

    @tf.function(input_signature=[{k: tf.TensorSpec(shape=[None, 1], dtype=tf.float32, name=k) for k in FEATURE_KEYS}])
    def serve_features(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: model(features, training=False)}

    return {
        "serving_default": serve_tf_examples.get_concrete_function(),
        DENSE_SIGNATURE: serve_features.get_concrete_function(),
    }


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point. ``custom_config`` may set ``hidden_units``, ``learning_rate``, ``seed``, ``epochs``."""
    config = fn_args.custom_config or {}
    keras.utils.set_random_seed(int(config.get("seed", 0)))
    schema = tfx.utils.parse_pbtxt_file(fn_args.schema_path, schema_pb2.Schema())
    train = _input_fn(fn_args.train_files, fn_args.data_accessor, schema, TRAIN_BATCH_SIZE)
    evaluation = _input_fn(fn_args.eval_files, fn_args.data_accessor, schema, EVAL_BATCH_SIZE)
    label_mean = float(tf.reduce_mean(tf.concat([label for _, label in train.take(10)], axis=0)))
    model = build_model(train.take(10), int(config.get("hidden_units", 32)),
                        float(config.get("learning_rate", 1e-2)), label_mean)
    tensorboard = keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch")
    model.fit(train, steps_per_epoch=fn_args.train_steps, validation_data=evaluation,
              validation_steps=fn_args.eval_steps, callbacks=[tensorboard], verbose=2)
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=serving_signatures(model))
