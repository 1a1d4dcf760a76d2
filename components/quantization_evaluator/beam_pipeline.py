"""The QuantizationEvaluator's Beam pipeline: read -> batch -> score (decode once, both models) -> metrics per slice."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from tfx.dsl.io import fileio
from tfx_bsl.public import tfxio

from quantgate.components.quantization_evaluator.checks import EvaluationPlan
from quantgate.components.quantization_evaluator.config import EvaluatorConfig
from quantgate.components.quantization_evaluator.gate import CLASSIFICATION
from quantgate.components.quantization_evaluator.inference import SERVING_TAG, ParserSpec, ScoreDoFn
from quantgate.components.quantization_evaluator.metrics import ComputeSliceMetrics, SliceKey
from quantgate.components.shared.strict_json import json_safe
from quantgate.components.shared.tfrecord_crc import use_compiled_crc32c

# Fixed-size batches: large enough that a batch's fixed costs (a parse_example call, two model calls, a combine)
# are small next to its examples, small enough to stay a few MB. BatchElements' adaptive sizing starts at 1 and
# spends the first thousands of examples finding this.
BATCH_SIZE = 4096
_TELEMETRY = ["quantgate", "QuantizationEvaluator"]


def _to_json_line(row: tuple[tuple[int, SliceKey], dict[str, Any]]) -> str:
    (candidate, key), values = row
    return json.dumps({"candidate": candidate, "slice": list(key), "metrics": json_safe(values)})


def _sum_counts(rows: Iterable[tuple[int, int, float]]) -> tuple[int, int, float]:
    agree = total = 0
    worst = 0.0
    for a, n, diff in rows:
        agree, total, worst = agree + a, total + n, max(worst, diff)
    return agree, total, worst


def _read_lines(prefix: str) -> list[Any]:
    rows = []
    for path in fileio.glob(prefix + "*.jsonl"):
        with fileio.open(path, "r") as f:
            rows.extend(json.loads(line) for line in f)
    return rows


def _held_out(record: bytes, num_partitions: int, excluded: frozenset[bytes]) -> int:
    return int(record in excluded)


def run_beam_evaluation(pipeline: beam.Pipeline, plan: EvaluationPlan, config: EvaluatorConfig, staging_dir: str,
                        excluded: frozenset[bytes] = frozenset(),
                        ) -> tuple[list[dict[SliceKey, dict[str, Any]]], dict[str, Any] | None, int]:
    """Runs ``pipeline`` (not yet run): read -> (leave out the records in ``excluded``) -> batch -> parse ->
    predict with the float model and every candidate -> per-slice metrics. Returns them by slice for each candidate
    (in ``plan.candidates`` order); when ``plan.serving_signature`` is set, the serving-signature comparison
    (``signature``, ``agreement``, ``max_abs_diff``, ``num_examples``; else ``None``); and how many records of
    the split were left out."""
    prefix = os.path.join(staging_dir, "slice_metrics")
    excluded_prefix = os.path.join(staging_dir, "excluded")
    serving_prefix = os.path.join(staging_dir, "serving_agreement")
    task = config.thresholds.info.task
    parser = ParserSpec(tuple(plan.specs), config.label_key, tuple(config.slicing_feature_keys), plan.source,
                        plan.kinds, plan.transform)
    use_compiled_crc32c()  # again here: a test or a caller may have reset Beam's choice since import
    with pipeline as p:
        records = p | "ReadSplit" >> tfxio.TFExampleRecord(plan.patterns,
                                                          telemetry_descriptors=_TELEMETRY).RawRecordBeamSource()
        if excluded:
            records, held_out = records | "HoldOutSearchSample" >> beam.Partition(_held_out, 2, excluded)
            _ = (held_out
                 | "CountHeldOut" >> beam.combiners.Count.Globally()
                 | "HeldOutToJson" >> beam.Map(json.dumps)
                 | "WriteHeldOut" >> beam.io.WriteToText(excluded_prefix, file_name_suffix=".jsonl"))
        predictions = (
            records
            | "Batch" >> beam.BatchElements(min_batch_size=BATCH_SIZE, max_batch_size=BATCH_SIZE)
            | "Score" >> beam.ParDo(ScoreDoFn(parser, plan.saved_model_dir, plan.signature_name,
                                              [c.tflite_path for c in plan.candidates], plan.float_output,
                                              [c.output for c in plan.candidates],
                                              tflite_sha256s=[c.tflite_sha256 for c in plan.candidates],
                                              serving_signature=plan.serving_signature,
                                              classification=task == CLASSIFICATION,
                                              output_kind=config.output_kind)
                                    ).with_outputs(SERVING_TAG, main="predictions")
        )
        _ = (
            predictions.predictions
            | "Metrics" >> ComputeSliceMetrics(task, config.slicing_feature_keys, config.thresholds.confidence,
                                               config.thresholds.delta_type == "relative")
            | "ToJson" >> beam.Map(_to_json_line)
            | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl")
        )
        if plan.serving_signature is not None:
            _ = (
                predictions[SERVING_TAG]
                | "SumServing" >> beam.CombineGlobally(_sum_counts)
                | "ServingToJson" >> beam.Map(json.dumps)
                | "WriteServing" >> beam.io.WriteToText(serving_prefix, file_name_suffix=".jsonl")
            )
    results: list[dict[SliceKey, dict[str, Any]]] = [{} for _ in plan.candidates]
    for row in _read_lines(prefix):
        results[row["candidate"]][tuple(row["slice"])] = row["metrics"]
    serving = None
    if plan.serving_signature is not None:
        agree, total, worst = _sum_counts(tuple(row) for row in _read_lines(serving_prefix))
        serving = {"signature": plan.serving_signature, "agreement": agree / total if total else None,
                   "max_abs_diff": worst if total else None, "num_examples": total}
    return results, serving, sum(_read_lines(excluded_prefix)) if excluded else 0


