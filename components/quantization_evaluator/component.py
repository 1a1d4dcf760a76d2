"""QuantizationEvaluator: float vs quantized model on the same split, and the gate that writes the ModelBlessing."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.quantization_evaluator import executor
from components.quantization_evaluator.evaluation import EvaluatorConfig
from components.quantization_evaluator.gate import Thresholds
from components.types import QuantizationEvaluation


class QuantizationEvaluatorSpec(ComponentSpec):
    """Inputs, parameters and outputs of QuantizationEvaluator."""

    PARAMETERS = {
        executor.LABEL_KEY_KEY: ExecutionParameter(type=str),
        executor.SPLIT_KEY: ExecutionParameter(type=str),
        executor.METRIC_KEY: ExecutionParameter(type=str),
        executor.MAX_DELTA_KEY: ExecutionParameter(type=float),
        executor.DELTA_TYPE_KEY: ExecutionParameter(type=str),
        executor.SLICING_FEATURE_KEYS_KEY: ExecutionParameter(type=str),
        executor.MIN_SLICE_SIZE_KEY: ExecutionParameter(type=int),
        executor.MAX_SLICE_DELTA_KEY: ExecutionParameter(type=float, optional=True),
        executor.MIN_AGREEMENT_KEY: ExecutionParameter(type=float, optional=True),
        executor.MAX_MODEL_BYTES_KEY: ExecutionParameter(type=int, optional=True),
        executor.MAX_LATENCY_MS_KEY: ExecutionParameter(type=float, optional=True),
        executor.SIGNATURE_NAME_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.QUANTIZED_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        executor.EVALUATION_KEY: ChannelParameter(type=QuantizationEvaluation),
        executor.BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class QuantizationEvaluator(base_beam_component.BaseBeamComponent):
    """Scores the float SavedModel and the quantized TFLite model on the same split and gates the quantized one.

    Outputs: ``evaluation`` (``components.QuantizationEvaluation``: ``metrics.json`` + ``report.html``) and
    ``blessing`` (a standard ``ModelBlessing`` about the quantized model, readable by the stock Pusher and by
    ``LatestBlessedModelStrategy``).
    """

    SPEC_CLASS = QuantizationEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        quantized_model: types.BaseChannel,
        examples: types.BaseChannel,
        label_key: str,
        split: str = "eval",
        metric: str = "accuracy",
        max_delta: float = 0.01,
        delta_type: str = "absolute",
        slicing_feature_keys: Sequence[str] = (),
        min_slice_size: int = 30,
        max_slice_delta: float | None = None,
        min_agreement: float | None = None,
        max_model_bytes: int | None = None,
        max_latency_ms: float | None = None,
        signature_name: str | None = None,
    ) -> None:
        """Builds the component; bad parameter values fail here, before any pipeline runs.

        Args:
          model: the float Model (the Trainer's), with a dense-input signature in ``Format-Serving``.
          quantized_model: the Quantizer's Model (``Format-Serving/model.tflite``).
          examples: Examples with ``split``; tf.Example payload carrying the model inputs and ``label_key``.
          label_key: the label feature (class index for classification metrics, a number for regression).
          split: the split to evaluate on.
          metric: ``accuracy`` or ``auc`` (binary) for classifiers, ``mse`` or ``mae`` for regressors.
          max_delta: the largest allowed degradation of ``metric`` (positive = quantized is worse). May be
            negative: the quantized model must then improve by that much.
          delta_type: ``absolute`` or ``relative`` (degradation divided by the float model's value).
          slicing_feature_keys: features whose values define slices (each feature on its own).
          min_slice_size: slices with fewer examples are reported as skipped and not gated.
          max_slice_delta: if set, every gated slice's degradation must be at most this.
          min_agreement: if set, the fraction of examples where both models predict the same class (classifiers).
          max_model_bytes: if set, a budget on the quantized model's size.
          max_latency_ms: if set, a budget on the quantized model's batch-1 p95 latency on the evaluating machine.
          signature_name: the float model's dense signature (default: the only dense one, as the Quantizer picks).
        """
        EvaluatorConfig(
            label_key=label_key, split=split, slicing_feature_keys=tuple(slicing_feature_keys),
            signature_name=signature_name,
            thresholds=Thresholds(metric=metric, max_delta=max_delta, delta_type=delta_type,
                                  min_slice_size=min_slice_size, max_slice_delta=max_slice_delta,
                                  min_agreement=min_agreement, max_model_bytes=max_model_bytes,
                                  max_latency_ms=max_latency_ms),
        ).validate()
        spec = QuantizationEvaluatorSpec(
            model=model,
            quantized_model=quantized_model,
            examples=examples,
            label_key=label_key,
            split=split,
            metric=metric,
            max_delta=float(max_delta),
            delta_type=delta_type,
            slicing_feature_keys=json.dumps(list(slicing_feature_keys)),
            min_slice_size=min_slice_size,
            max_slice_delta=None if max_slice_delta is None else float(max_slice_delta),
            min_agreement=None if min_agreement is None else float(min_agreement),
            max_model_bytes=max_model_bytes,
            max_latency_ms=None if max_latency_ms is None else float(max_latency_ms),
            signature_name=signature_name,
            evaluation=types.Channel(type=QuantizationEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        )
        super().__init__(spec=spec)
