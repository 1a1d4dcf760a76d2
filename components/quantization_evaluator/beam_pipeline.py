"""The QuantizationEvaluator's Beam pipeline: read -> batch -> parse -> predict with both models -> metrics per slice."""

from __future__ import annotations

import json
import os
from typing import Any

import apache_beam as beam
from tfx.dsl.io import fileio
from tfx_bsl.public import tfxio

from components.quantization_evaluator.checks import EvaluationPlan
from components.quantization_evaluator.config import EvaluatorConfig
from components.quantization_evaluator.inference import ParseExamplesDoFn, PredictDoFn
from components.quantization_evaluator.metrics import ComputeSliceMetrics, SliceKey
from components.shared.strict_json import json_safe

# Beam's BatchElements grows batches up to this size: large enough that inference, not Python, dominates.
MAX_BATCH_SIZE = 1024
_TELEMETRY = ["quantgate", "QuantizationEvaluator"]


def _to_json_line(row: tuple[SliceKey, dict[str, Any]]) -> str:
    key, values = row
    return json.dumps({"slice": list(key), "metrics": json_safe(values)})


def run_beam_evaluation(pipeline: beam.Pipeline, plan: EvaluationPlan, config: EvaluatorConfig,
                        staging_dir: str) -> dict[SliceKey, dict[str, Any]]:
    """Runs ``pipeline`` (not yet run): read -> batch -> parse -> predict -> per-slice metrics. Returns them by slice."""
    prefix = os.path.join(staging_dir, "slice_metrics")
    task = config.thresholds.info.task
    with pipeline as p:
        _ = (
            p
            | "ReadSplit" >> tfxio.TFExampleRecord(plan.patterns, telemetry_descriptors=_TELEMETRY).RawRecordBeamSource()
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=MAX_BATCH_SIZE)
            | "Parse" >> beam.ParDo(ParseExamplesDoFn(plan.specs, config.label_key, config.slicing_feature_keys,
                                                      plan.source))
            | "Predict" >> beam.ParDo(PredictDoFn(plan.saved_model_dir, plan.signature_name, plan.tflite_path,
                                                  plan.float_output, plan.quant_output,
                                                  tflite_sha256=plan.tflite_sha256))
            | "Metrics" >> ComputeSliceMetrics(task, config.slicing_feature_keys)
            | "ToJson" >> beam.Map(_to_json_line)
            | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl")
        )
    results: dict[SliceKey, dict[str, Any]] = {}
    for path in fileio.glob(prefix + "*.jsonl"):
        with fileio.open(path, "r") as f:
            for line in f:
                row = json.loads(line)
                results[tuple(row["slice"])] = row["metrics"]
    return results


