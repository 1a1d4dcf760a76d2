"""QuantizationEvaluator's executor: unpacks TFX's dicts and runs ``evaluation.evaluate`` on the Beam pipeline."""

from __future__ import annotations

import json
from typing import Any

from tfx.dsl.components.base import base_beam_executor
from tfx.types import Artifact, artifact_utils

from components.quantization_evaluator.evaluation import EvaluatorConfig, evaluate
from components.quantization_evaluator.gate import Thresholds

MODEL_KEY = "model"
QUANTIZED_MODEL_KEY = "quantized_model"
EXAMPLES_KEY = "examples"
EVALUATION_KEY = "evaluation"
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
SIGNATURE_NAME_KEY = "signature_name"


def config_from_exec_properties(exec_properties: dict[str, Any]) -> EvaluatorConfig:
    """The validated ``EvaluatorConfig`` of a component's execution properties (absent optionals are ``None``)."""

    def optional(key: str, kind: type) -> Any:
        value = exec_properties.get(key)
        return None if value is None else kind(value)

    return EvaluatorConfig(
        label_key=exec_properties[LABEL_KEY_KEY],
        split=exec_properties[SPLIT_KEY],
        slicing_feature_keys=tuple(json.loads(exec_properties.get(SLICING_FEATURE_KEYS_KEY) or "[]")),
        signature_name=exec_properties.get(SIGNATURE_NAME_KEY) or None,
        thresholds=Thresholds(
            metric=exec_properties[METRIC_KEY],
            max_delta=float(exec_properties[MAX_DELTA_KEY]),
            delta_type=exec_properties[DELTA_TYPE_KEY],
            min_slice_size=int(exec_properties[MIN_SLICE_SIZE_KEY]),
            max_slice_delta=optional(MAX_SLICE_DELTA_KEY, float),
            min_agreement=optional(MIN_AGREEMENT_KEY, float),
            max_model_bytes=optional(MAX_MODEL_BYTES_KEY, int),
            max_latency_ms=optional(MAX_LATENCY_MS_KEY, float),
        ),
    ).validate()


class Executor(base_beam_executor.BaseBeamExecutor):
    """Compares the float model and the quantized model on one split and writes the evaluation and the blessing."""

    def Do(self, input_dict: dict[str, list[Artifact]], output_dict: dict[str, list[Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        evaluate(
            self._make_beam_pipeline(),
            model=artifact_utils.get_single_instance(input_dict[MODEL_KEY]),
            quantized_model=artifact_utils.get_single_instance(input_dict[QUANTIZED_MODEL_KEY]),
            examples=artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY]),
            evaluation=artifact_utils.get_single_instance(output_dict[EVALUATION_KEY]),
            blessing=artifact_utils.get_single_instance(output_dict[BLESSING_KEY]),
            config=config_from_exec_properties(exec_properties),
        )
