"""``output_kind`` and ``to_probabilities`` are defined once, in ``shared.task_metrics``: the QuantizationEvaluator
and the Quantizer's search read the same names and the same transform (the numerics are tested with the evaluator,
tests/components/quantization_evaluator/test_output_kind.py)."""

from __future__ import annotations

import numpy as np
import pytest

from quantgate.components.shared import task_metrics


def test_the_evaluator_and_the_search_use_the_shared_definitions() -> None:
    from quantgate.components.quantization_evaluator import config, inference
    from quantgate.components.quantizer import search

    assert inference.to_probabilities is task_metrics.to_probabilities
    assert search.to_probabilities is task_metrics.to_probabilities
    assert (config.PROBABILITIES, config.LOGITS, config.OUTPUT_KINDS) == (
        task_metrics.PROBABILITIES, task_metrics.LOGITS, task_metrics.OUTPUT_KINDS)


def test_a_logit_of_zero_is_the_threshold_accuracy_sees() -> None:
    logits = np.array([[-0.1], [0.1], [0.4]], dtype=np.float32)
    labels = np.array([0, 1, 1])
    # Raw, 0.1 and 0.4 fall under accuracy's 0.5 threshold; as probabilities they are above it.
    assert task_metrics.metric_value("accuracy", logits, labels) == pytest.approx(1 / 3)
    assert task_metrics.metric_value("accuracy", task_metrics.to_probabilities(logits, "logits"), labels) == 1.0


def test_an_unknown_output_kind_names_its_owner() -> None:
    with pytest.raises(ValueError, match=r"^QuantizationEvaluator: unknown output_kind 'logit'"):
        task_metrics.to_probabilities(np.zeros((1, 1), np.float32), "logit")
    with pytest.raises(ValueError, match=r"^Quantizer: accuracy_search: unknown output_kind 'logit'"):
        task_metrics.to_probabilities(np.zeros((1, 1), np.float32), "logit", owner="Quantizer: accuracy_search")
