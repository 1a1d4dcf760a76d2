"""The QuantizationEvaluator's keys and spec, as data: the component builds it, the executor reads by these keys."""

from __future__ import annotations

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from quantgate.components.shared import properties
from quantgate.components.types import QuantizationEvaluation, RepresentativeDataset

MODEL_KEY = properties.MODEL_KEY
QUANTIZED_MODEL_KEY = "quantized_model"
EXAMPLES_KEY = properties.EXAMPLES_KEY
EVALUATION_KEY = properties.EVALUATION_KEY
TRANSFORM_GRAPH_KEY = properties.TRANSFORM_GRAPH_KEY
SEARCH_DATASET_KEY = properties.SEARCH_DATASET_KEY
BLESSING_KEY = "blessing"
LABEL_KEY_KEY = "label_key"
SPLIT_KEY = "split"
METRIC_KEY = "metric"
MAX_DELTA_KEY = "max_delta"
DELTA_TYPE_KEY = "delta_type"
# A JSON list: Kubeflow v2 carries execution parameters as strings, ints and doubles only.
SLICING_FEATURE_KEYS_KEY = "slicing_feature_keys"
MIN_SLICE_SIZE_KEY = "min_slice_size"
MAX_SLICE_DELTA_KEY = "max_slice_delta"
MIN_AGREEMENT_KEY = "min_agreement"
MAX_MODEL_BYTES_KEY = "max_model_bytes"
MAX_LATENCY_MS_KEY = "max_latency_ms"
LATENCY_MEASURE_KEY = "latency_measure"
SIGNATURE_NAME_KEY = "signature_name"
NONFINITE_INPUTS_KEY = "nonfinite_inputs"
# Gated metrics beyond METRIC_KEY's, with their max_delta: a JSON list of [metric, max_delta] pairs.
EXTRA_METRICS_KEY = "extra_metrics"
DELTA_BOUND_KEY = "delta_bound"
CONFIDENCE_KEY = "confidence"
MIN_EXAMPLES_KEY = "min_examples"
SELECTION_KEY = properties.SELECTION
# What the single output holds: 'probabilities' or 'logits' (sigmoid / softmax applied to both models before scoring).
# Optional so an execution recorded before it existed keeps its meaning (probabilities).
OUTPUT_KIND_KEY = "output_kind"
# Further candidates, each its own optional channel (Kubeflow v2 compiles one channel per input key, no union):
# quantized_model_1 ... quantized_model_{MAX_CANDIDATES - 1}, beside quantized_model.
MAX_CANDIDATES = properties.MAX_CANDIDATES


def candidate_key(index: int) -> str:
    """The input key of the ``index``-th candidate (0: ``quantized_model``)."""
    return QUANTIZED_MODEL_KEY if index == 0 else f"{QUANTIZED_MODEL_KEY}_{index}"


class QuantizationEvaluatorSpec(ComponentSpec):
    """Inputs, parameters and outputs of QuantizationEvaluator."""

    PARAMETERS = {
        LABEL_KEY_KEY: ExecutionParameter(type=str),
        SPLIT_KEY: ExecutionParameter(type=str),
        METRIC_KEY: ExecutionParameter(type=str),
        MAX_DELTA_KEY: ExecutionParameter(type=float),
        DELTA_TYPE_KEY: ExecutionParameter(type=str),
        SLICING_FEATURE_KEYS_KEY: ExecutionParameter(type=str),
        MIN_SLICE_SIZE_KEY: ExecutionParameter(type=int),
        MAX_SLICE_DELTA_KEY: ExecutionParameter(type=float, optional=True),
        MIN_AGREEMENT_KEY: ExecutionParameter(type=float, optional=True),
        MAX_MODEL_BYTES_KEY: ExecutionParameter(type=int, optional=True),
        MAX_LATENCY_MS_KEY: ExecutionParameter(type=float, optional=True),
        LATENCY_MEASURE_KEY: ExecutionParameter(type=str, optional=True),
        SIGNATURE_NAME_KEY: ExecutionParameter(type=str, optional=True),
        NONFINITE_INPUTS_KEY: ExecutionParameter(type=str),
        EXTRA_METRICS_KEY: ExecutionParameter(type=str, optional=True),
        DELTA_BOUND_KEY: ExecutionParameter(type=str, optional=True),
        CONFIDENCE_KEY: ExecutionParameter(type=float, optional=True),
        MIN_EXAMPLES_KEY: ExecutionParameter(type=int, optional=True),
        SELECTION_KEY: ExecutionParameter(type=str, optional=True),
        OUTPUT_KIND_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        QUANTIZED_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        **{candidate_key(i): ChannelParameter(type=standard_artifacts.Model, optional=True)
           for i in range(1, MAX_CANDIDATES)},
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        # The graph the Quantizer calibrated through (raw examples -> the signature's transformed inputs).
        TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph, optional=True),
        # The accuracy search's sample (the one wired to the Quantizer): left out of the gate when of its split.
        SEARCH_DATASET_KEY: ChannelParameter(type=RepresentativeDataset, optional=True),
    }
    OUTPUTS = {
        EVALUATION_KEY: ChannelParameter(type=QuantizationEvaluation),
        BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
    }
