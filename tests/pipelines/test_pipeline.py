"""The demo pipeline end to end on penguins (one run per session, see conftest.demo_run)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from quantgate.pipelines.models.penguin.penguin_trainer import DENSE_SIGNATURE, FEATURE_KEYS

FOUNDATION_COMPONENTS = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "Trainer", "Evaluator")


@pytest.mark.parametrize("component_id", FOUNDATION_COMPONENTS)
def test_every_component_has_a_complete_execution(demo_run, component_id: str) -> None:
    assert demo_run.execution(component_id).last_known_state == metadata_store_pb2.Execution.COMPLETE


def test_float_evaluator_blesses_the_trained_model(demo_run) -> None:
    blessing = demo_run.output("Evaluator", "blessing")
    assert blessing.custom_properties["blessed"].int_value == 1


def _eval_examples(demo_run, limit: int = 64) -> list[bytes]:
    examples = demo_run.output("CsvExampleGen", "examples")
    files = tf.io.gfile.glob(os.path.join(examples.uri, "Split-eval", "*"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit)]


def test_saved_model_signatures_agree(demo_run) -> None:
    model_uri = demo_run.output("Trainer", "model").uri
    loaded = tf.saved_model.load(os.path.join(model_uri, "Format-Serving"))
    assert {"serving_default", DENSE_SIGNATURE} <= set(loaded.signatures)

    serialized = _eval_examples(demo_run)
    from_examples = loaded.signatures["serving_default"](tf.constant(serialized, dtype=tf.string))["probabilities"]

    parsed = tf.io.parse_example(serialized, {k: tf.io.FixedLenFeature([1], tf.float32) for k in FEATURE_KEYS})
    dense = loaded.signatures[DENSE_SIGNATURE]
    assert sorted(dense.structured_input_signature[1]) == sorted(FEATURE_KEYS)
    from_features = dense(**parsed)["probabilities"]

    assert from_examples.shape == (len(serialized), 3)
    np.testing.assert_allclose(from_examples.numpy(), from_features.numpy(), rtol=1e-6, atol=1e-6)
