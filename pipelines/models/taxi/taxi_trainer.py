"""TFX Trainer module for the Chicago taxi pipeline: a small Keras binary classifier over Transform's features.

The model's inputs are the transformed features (``*_xf``, see ``taxi_transform.py``): z-scores as float32, and
vocabulary / bucket ids as int32, each id through its own ``Embedding``. It exports three signatures:
- ``serving_default``: serialized *raw* ``tf.Example`` in -> TFT layer -> model (TFX's Evaluator, TF Serving);
- ``transform_features``: serialized raw ``tf.Example`` in -> all transformed features, the label ``tips_xf``
  included (the Evaluator's ``preprocessing_function_names``: that is where TFMA finds the label);
- ``serving_features`` (``DENSE_SIGNATURE``): one ``[batch, 1]`` input per transformed feature, named after it
  (float32 z-scores, int32 ids): what the Quantizer converts.

Why ids are int32 inputs feeding an ``Embedding`` (measured with TF 2.16, TFLITE_BUILTINS_INT8 only, int8 I/O):
an int32 id input stays int32 (not quantized) and both ``Embedding`` (GATHER) and ``tf.one_hot`` (ONE_HOT) convert
to a model with no float tensor; a float32 id input is int8-quantized (256 levels over the calibrated range, so ids
above ~255 collide) and leaves a float DEQUANTIZE + CAST in the model; ``CategoryEncoding`` (TFX's own taxi model)
crashes the converter with a segmentation fault. ``Embedding`` reads one row per id where one-hot multiplies a
vocabulary-wide 0/1 vector, so it is the smaller and faster of the two that convert.

This folder is packaged whole into the user-module wheel: keep unrelated code out of it.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

RAW_LABEL_KEY = "tips"  # taxi_transform.LABEL_KEY (this module imports no sibling: both are top-level in the wheel)
LABEL_KEY = "tips_xf"   # taxi_transform.transformed_name(LABEL_KEY)
DENSE_SIGNATURE = "serving_features"
TRANSFORM_SIGNATURE = "transform_features"
OUTPUT_KEY = "probabilities"
TRAIN_BATCH_SIZE = 64
EVAL_BATCH_SIZE = 64


def feature_inputs(tf_transform_output: tft.TFTransformOutput) -> dict[str, tf.dtypes.DType]:
    """The model's inputs: every transformed feature but the label, float32 for floats and int32 for ids."""
    spec = tf_transform_output.transformed_feature_spec()
    return {name: tf.float32 if feature.dtype.is_floating else tf.int32
            for name, feature in sorted(spec.items()) if name != LABEL_KEY}


def _cast_features(features: dict[str, tf.Tensor], dtypes: dict[str, tf.dtypes.DType]) -> dict[str, tf.Tensor]:
    return {name: tf.cast(features[name], dtype) for name, dtype in dtypes.items()}


def _input_fn(file_pattern: list[str], data_accessor: tfx.components.DataAccessor,
              tf_transform_output: tft.TFTransformOutput, batch_size: int) -> tf.data.Dataset:
    dtypes = feature_inputs(tf_transform_output)
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY),
        tf_transform_output.transformed_metadata.schema,
    )
    return dataset.map(lambda features, label: (_cast_features(features, dtypes), tf.cast(label, tf.float32)))


def _build_model(tf_transform_output: tft.TFTransformOutput, hidden_units: int, embedding_dim: int,
                 learning_rate: float) -> keras.Model:
    dtypes = feature_inputs(tf_transform_output)
    inputs = {name: keras.layers.Input(shape=(1,), name=name, dtype=dtype) for name, dtype in dtypes.items()}
    dense = [inputs[name] for name, dtype in dtypes.items() if dtype == tf.float32]
    parts = [keras.layers.Dense(hidden_units, activation="relu", name="dense_features")(
        keras.layers.Concatenate(name="z_scores")(dense))]
    for name, dtype in dtypes.items():
        if dtype == tf.int32:
            buckets = tf_transform_output.num_buckets_for_transformed_feature(name)
            embedded = keras.layers.Embedding(buckets, embedding_dim, name=f"embed_{name}")(inputs[name])
            parts.append(keras.layers.Flatten(name=f"flat_{name}")(embedded))
    x = keras.layers.Concatenate(name="all_features")(parts)
    x = keras.layers.Dense(hidden_units, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_KEY)(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(), keras.metrics.AUC(name="auc")],
    )
    return model


def _signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput) -> dict:
    dtypes = feature_inputs(tf_transform_output)
    model.tft_layer = tf_transform_output.transform_features_layer()  # tracked: its assets are saved with the model
    raw_spec = tf_transform_output.raw_feature_spec()
    serving_spec = {k: v for k, v in raw_spec.items() if k != RAW_LABEL_KEY}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve_tf_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        transformed = model.tft_layer(tf.io.parse_example(serialized, serving_spec))
        return {OUTPUT_KEY: model(_cast_features(transformed, dtypes), training=False)}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def transform_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return model.tft_layer(tf.io.parse_example(serialized, raw_spec))

    @tf.function(input_signature=[{name: tf.TensorSpec(shape=[None, 1], dtype=dtype, name=name)
                                   for name, dtype in dtypes.items()}])
    def serve_features(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {OUTPUT_KEY: model(features, training=False)}

    return {
        "serving_default": serve_tf_examples.get_concrete_function(),
        TRANSFORM_SIGNATURE: transform_features.get_concrete_function(),
        DENSE_SIGNATURE: serve_features.get_concrete_function(),
    }


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point. ``custom_config`` may set ``hidden_units``, ``embedding_dim``, ``learning_rate``,
    ``seed``."""
    config = fn_args.custom_config or {}
    keras.utils.set_random_seed(int(config.get("seed", 0)))
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    train = _input_fn(fn_args.train_files, fn_args.data_accessor, tf_transform_output, TRAIN_BATCH_SIZE)
    evaluation = _input_fn(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, EVAL_BATCH_SIZE)
    model = _build_model(tf_transform_output, int(config.get("hidden_units", 32)),
                         int(config.get("embedding_dim", 4)), float(config.get("learning_rate", 3e-3)))
    tensorboard = keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch")
    model.fit(train, steps_per_epoch=fn_args.train_steps, validation_data=evaluation,
              validation_steps=fn_args.eval_steps, callbacks=[tensorboard], verbose=2)
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=_signatures(model, tf_transform_output))
