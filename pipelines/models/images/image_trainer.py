"""TFX Trainer module for the image pipeline: a MobileNet-class CNN over Transform's decoded images, exported as
an ordinary TFX Trainer exports a model.

The model's input is ``image_xf`` (float32 ``[batch, 32, 32, 3]`` in [0, 1], see ``image_transform.py``), its
output the softmax over the 10 classes. ``custom_config['architecture']`` picks the network:
- ``mobilenet_v2`` (default): ``tf_keras.applications.MobileNetV2(alpha=0.35, weights=None)`` at 32x32, with its
  BatchNormalization momentum lowered from 0.999 to 0.9: at 0.999 the moving statistics are still near their
  initial values after the few hundred steps a demo trains, and the inference-mode model answers garbage;
- ``separable``: a small MobileNet-v1-style network (a strided conv, then depthwise-separable blocks, BN + ReLU6),
  ~20k parameters: what the pipeline tests train in well under a minute on two CPU cores.

Exported with ``tf.saved_model.save(model, ..., signatures={'serving_default': ...})`` as TFX's own examples do:
the only signature takes serialized raw tf.Examples (parse -> the TFT layer -> the model). No dense-input
signature: quantgate derives the function to convert from the model's restored Keras call.

This folder is packaged whole into the user-module wheel: keep unrelated code out of it.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

# image_transform's names: this module imports no sibling (both are top-level modules in the user-module wheel).
RAW_LABEL_KEY = "label"
IMAGE_KEY = "image_xf"
LABEL_KEY = "label_xf"
IMAGE_SIZE = 32
CHANNELS = 3
NUM_CLASSES = 10
ARCHITECTURES = ("mobilenet_v2", "separable")
TRAIN_BATCH_SIZE = 32
EVAL_BATCH_SIZE = 32
OUTPUT_KEY = "probabilities"


def _input_fn(file_pattern: list[str], data_accessor: tfx.components.DataAccessor,
              tf_transform_output: tft.TFTransformOutput, batch_size: int) -> tf.data.Dataset:
    """Transformed examples -> ({image_xf: images}, label) batches, repeated (Keras counts steps)."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY),
        tf_transform_output.transformed_metadata.schema)
    return dataset.map(lambda features, label: ({IMAGE_KEY: features[IMAGE_KEY]}, label))


def _separable_block(x: tf.Tensor, filters: int, strides: int, name: str) -> tf.Tensor:
    """MobileNet v1's block: depthwise 3x3 -> BN -> ReLU6 -> pointwise 1x1 -> BN -> ReLU6."""
    x = keras.layers.DepthwiseConv2D(3, strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_pw_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_pw_relu")(x)


def build_model(architecture: str, learning_rate: float) -> keras.Model:
    """The CNN (``ARCHITECTURES``), input ``image_xf``, softmax output, compiled."""
    images = keras.layers.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, CHANNELS), name=IMAGE_KEY, dtype=tf.float32)
    if architecture == "mobilenet_v2":
        backbone = keras.applications.MobileNetV2(input_tensor=images, alpha=0.35, weights=None,
                                                  classes=NUM_CLASSES, classifier_activation="softmax")
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9  # see the module docstring: 0.999 needs thousands of steps
        model = keras.Model(inputs=images, outputs=backbone.output)
    elif architecture == "separable":
        x = keras.layers.Conv2D(16, 3, 2, padding="same", use_bias=False, name="stem")(images)
        x = keras.layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
        x = keras.layers.ReLU(6.0, name="stem_relu")(x)
        for i, (filters, strides) in enumerate(((32, 1), (64, 2), (64, 1), (128, 2))):
            x = _separable_block(x, filters, strides, f"block{i + 1}")
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name=OUTPUT_KEY)(x)
        model = keras.Model(inputs=images, outputs=outputs)
    else:
        raise ValueError(f"custom_config architecture {architecture!r}: choose one of {', '.join(ARCHITECTURES)}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def _serve_tf_examples_fn(model: keras.Model, tf_transform_output: tft.TFTransformOutput) -> tf.types.experimental.GenericFunction:
    """``serving_default`` as TFX's examples write it: serialized raw tf.Examples -> the TFT layer -> the model."""
    model.tft_layer = tf_transform_output.transform_features_layer()  # tracked: saved with the model
    feature_spec = tf_transform_output.raw_feature_spec()
    feature_spec.pop(RAW_LABEL_KEY)  # requests carry no label

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve_tf_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        transformed = model.tft_layer(tf.io.parse_example(serialized, feature_spec))
        return {OUTPUT_KEY: model({IMAGE_KEY: transformed[IMAGE_KEY]}, training=False)}

    return serve_tf_examples


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point. ``custom_config`` may set ``architecture``, ``learning_rate`` and ``seed``."""
    config = fn_args.custom_config or {}
    keras.utils.set_random_seed(int(config.get("seed", 0)))
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    train = _input_fn(fn_args.train_files, fn_args.data_accessor, tf_transform_output, TRAIN_BATCH_SIZE)
    evaluation = _input_fn(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, EVAL_BATCH_SIZE)
    model = build_model(str(config.get("architecture", "mobilenet_v2")), float(config.get("learning_rate", 3e-3)))
    model.fit(train, steps_per_epoch=fn_args.train_steps, validation_data=evaluation,
              validation_steps=fn_args.eval_steps, verbose=2)
    signatures = {"serving_default": _serve_tf_examples_fn(model, tf_transform_output).get_concrete_function()}
    tf.saved_model.save(model, fn_args.serving_model_dir, signatures=signatures)
