"""TFX Transform module for the image pipeline: PNG bytes in a tf.Example -> a fixed-shape float image, as TFX's
image examples do it (the decoding lives in Transform, so TF Serving and the Evaluator take the encoded bytes).

- ``image`` (one PNG per example, any size, gray or RGB) -> ``image_xf``: float32 ``[IMAGE_SIZE, IMAGE_SIZE,
  CHANNELS]`` in [0, 1] (decoded with ``tf.io.decode_png``, resized when the PNG has another size);
- ``label`` (int64, the class id) -> ``label_xf``, unchanged.

``tf.io.decode_png`` fails on an empty string ("Input is empty"): this is the kind of ``preprocessing_fn`` that must
never be run on placeholder values (see ``components/shared/transform_inputs.py``).

This folder is packaged whole into the user-module wheel: keep unrelated code out of it.
"""

from __future__ import annotations

import tensorflow as tf

IMAGE_KEY = "image"
LABEL_KEY = "label"
IMAGE_SIZE = 32
CHANNELS = 3


def transformed_name(key: str) -> str:
    return f"{key}_xf"


def _dense(x: tf.Tensor | tf.SparseTensor, default: str | int) -> tf.Tensor:
    """A ``[batch, 1]`` feature as a ``[batch]`` tensor: SchemaGen without ``infer_feature_shape`` makes it sparse."""
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default)
    return tf.reshape(x, [-1])


def decode_image(png: tf.Tensor) -> tf.Tensor:
    """One PNG (a scalar string) -> float32 ``[IMAGE_SIZE, IMAGE_SIZE, CHANNELS]`` in [0, 1]."""
    image = tf.image.convert_image_dtype(tf.io.decode_png(png, channels=CHANNELS), tf.float32)
    # A PNG of the trained size passes unchanged (resize to the same size is the identity); another is resized.
    image = tf.image.resize(image, [IMAGE_SIZE, IMAGE_SIZE])
    return tf.ensure_shape(image, [IMAGE_SIZE, IMAGE_SIZE, CHANNELS])


def preprocessing_fn(inputs: dict[str, tf.Tensor | tf.SparseTensor]) -> dict[str, tf.Tensor]:
    """TFX Transform entry point: ``image`` (PNG bytes) -> ``image_xf``, ``label`` -> ``label_xf``."""
    images = tf.map_fn(decode_image, _dense(inputs[IMAGE_KEY], ""),
                       fn_output_signature=tf.TensorSpec([IMAGE_SIZE, IMAGE_SIZE, CHANNELS], tf.float32))
    return {
        transformed_name(IMAGE_KEY): images,
        transformed_name(LABEL_KEY): _dense(inputs[LABEL_KEY], -1),
    }
