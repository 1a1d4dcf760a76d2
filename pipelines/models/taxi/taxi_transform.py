"""TFX Transform module for the Chicago taxi pipeline: ``preprocessing_fn``, as TFX's own taxi example does it.

- dense floats (``trip_miles``, ``fare``, ``trip_seconds``): z-scores;
- ``payment_type`` and ``company``: vocabulary ids (top 1000, 10 OOV buckets), vocabulary files named after the
  feature (``transform_fn/assets/payment_type``, ``.../company``);
- pickup/dropoff latitude and longitude: 10 quantile buckets;
- the label ``tips_xf``: 1 when the tip is more than 20 % of the fare.
Missing values are filled in (0 or '') before anything else, as TFX's ``taxi_utils._fill_in_missing``; every output
is a dense ``[batch, 1]`` tensor. TFX's example also passes hour/day/month and census tracts through as raw ints;
they carry no ``IntDomain`` (no known id range), so this module leaves them out.

This folder is packaged whole into the user-module wheel: keep unrelated code out of it.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

DENSE_FLOAT_FEATURE_KEYS = ("trip_miles", "fare", "trip_seconds")
VOCAB_FEATURE_KEYS = ("payment_type", "company")
BUCKET_FEATURE_KEYS = ("pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude")
VOCAB_SIZE = 1000
OOV_SIZE = 10
FEATURE_BUCKET_COUNT = 10
LABEL_KEY = "tips"
FARE_KEY = "fare"


def transformed_name(key: str) -> str:
    return f"{key}_xf"


def fill_in_missing(x: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """A ``[batch, <=1]`` SparseTensor -> a dense ``[batch, 1]`` tensor, missing values as 0 or ''; dense passes."""
    if not isinstance(x, tf.sparse.SparseTensor):
        return x
    default_value = "" if x.dtype == tf.string else 0
    return tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value)


def preprocessing_fn(inputs: dict[str, tf.Tensor | tf.SparseTensor]) -> dict[str, tf.Tensor]:
    """TFX Transform entry point: raw features -> transformed features (names end in ``_xf``)."""
    outputs = {}
    for key in DENSE_FLOAT_FEATURE_KEYS:
        outputs[transformed_name(key)] = tft.scale_to_z_score(tf.cast(fill_in_missing(inputs[key]), tf.float32))
    for key in VOCAB_FEATURE_KEYS:
        outputs[transformed_name(key)] = tft.compute_and_apply_vocabulary(
            fill_in_missing(inputs[key]), top_k=VOCAB_SIZE, num_oov_buckets=OOV_SIZE, vocab_filename=key)
    for key in BUCKET_FEATURE_KEYS:
        outputs[transformed_name(key)] = tft.bucketize(fill_in_missing(inputs[key]), FEATURE_BUCKET_COUNT)
    fare = tf.cast(fill_in_missing(inputs[FARE_KEY]), tf.float32)
    tips = tf.cast(fill_in_missing(inputs[LABEL_KEY]), tf.float32)
    outputs[transformed_name(LABEL_KEY)] = tf.where(
        tf.math.is_nan(fare), tf.zeros_like(fare, tf.int64), tf.cast(tips > fare * 0.2, tf.int64))
    return outputs
