"""Publishing the QuantizationEvaluator's outputs: the evaluation's files, the blessing's marker, the properties."""

from __future__ import annotations

import json
import os
from typing import Any

from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.io import fileio
from tfx.types import Artifact

from quantgate.components.quantization_evaluator import report
from quantgate.components.quantization_evaluator.gate import GateResult
from quantgate.components.shared import properties, strict_json
from quantgate.components.shared.finite_properties import set_finite_float_property


def write_evaluation_files(staging_dir: str, metrics: dict[str, Any]) -> None:
    """Writes ``metrics.json`` and ``report.html`` into the evaluation's staging folder (see ``staged_output``)."""
    for name, content in ((properties.METRICS_FILENAME, strict_json.dumps(metrics, indent=2, sort_keys=True)),
                          (properties.EVALUATION_REPORT_FILENAME, report.render_html(metrics))):
        with fileio.open(os.path.join(staging_dir, name), "w") as f:
            f.write(content)


def write_blessing_marker(blessing_uri: str, verdict: GateResult) -> None:
    """The blessing's ``BLESSED`` / ``NOT_BLESSED`` file, as TFX's Evaluator writes it."""
    marker = evaluator_constants.BLESSED_FILE_NAME if verdict.blessed else evaluator_constants.NOT_BLESSED_FILE_NAME
    fileio.makedirs(blessing_uri)
    with fileio.open(os.path.join(blessing_uri, marker), "w") as f:
        f.write("")


def set_properties(evaluation: Artifact, blessing: Artifact, metrics: dict[str, Any], verdict: GateResult,
                   quantized_model: Artifact) -> None:
    """The numbers people gate on, as custom properties (MLMD, Vertex and KFP show them; the stock Pusher and
    ``LatestBlessedModelStrategy`` read ``blessed`` and ``current_model_id``, as TFX's Evaluator writes them).
    ``quantized_model`` is the candidate ``selection`` chose; ``candidate_ids`` lists every one scored.

    A number that is undefined (``None``, NaN: a delta or a metric with no example scored) is left unset: MLMD
    cannot store NaN (``set_finite_float_property``), and the ``reason`` says why the verdict has no delta."""
    candidates = metrics.get("candidates") or [metrics["models"]["quantized"]]
    blessing.set_int_custom_property(properties.BLESSED, int(verdict.blessed))
    blessing.set_string_custom_property(properties.CURRENT_MODEL_URI, quantized_model.uri)
    blessing.set_int_custom_property(properties.CURRENT_MODEL_ID, quantized_model.id)
    metric = metrics["metric"]
    overall = metrics["overall"]
    for artifact in (blessing, evaluation):
        artifact.set_string_custom_property(properties.REASON, verdict.reason)
        artifact.set_string_custom_property(properties.SELECTION, metrics["selection"])
        artifact.set_string_custom_property(properties.CANDIDATE_IDS, json.dumps([c["id"] for c in candidates]))
        set_finite_float_property(artifact, properties.DELTA, verdict.delta)
        set_finite_float_property(artifact, properties.DELTA_UPPER, verdict.delta_upper)
        artifact.set_string_custom_property(properties.DELTA_BOUND, metrics["thresholds"]["delta_bound"])
        set_finite_float_property(artifact, properties.CONFIDENCE, metrics["thresholds"]["confidence"])
        set_finite_float_property(artifact, properties.THRESHOLD, verdict.threshold)
        artifact.set_string_custom_property(properties.METRIC, metric)
        artifact.set_string_custom_property(properties.DELTA_TYPE, metrics["thresholds"]["delta_type"])
        artifact.set_string_custom_property(properties.EVALUATED_SHA256,
                                            metrics["models"]["quantized"]["evaluated_sha256"])
    gated = [metric] + [name for name, _ in metrics["thresholds"]["extra_metrics"]]
    for name, value in ([(properties.float_metric(m), overall["float"].get(m)) for m in gated]
                        + [(properties.quantized_metric(m), overall["quantized"].get(m)) for m in gated]
                        + [(properties.AGREEMENT, overall["agreement"]),
                        (properties.QUANTIZED_LATENCY_P95_MS, metrics["latency_ms"]["quantized"]["p95_ms"]),
                           (properties.FLOAT_LATENCY_P95_MS, metrics["latency_ms"]["float"]["p95_ms"])]):
        set_finite_float_property(evaluation, name, value)
    serving = metrics.get("serving_signature_agreement")
    if serving is not None:
        set_finite_float_property(evaluation, properties.SERVING_SIGNATURE_AGREEMENT, serving["agreement"])
    evaluation.set_int_custom_property(properties.BLESSED, int(verdict.blessed))
    evaluation.set_int_custom_property(properties.NUM_EXAMPLES, overall["num_examples"])
    if metrics["sizes"]["quantized_bytes"] is not None:
        evaluation.set_int_custom_property(properties.QUANTIZED_SIZE_BYTES, metrics["sizes"]["quantized_bytes"])
    evaluation.set_string_custom_property(properties.REPORT_PATH,
                                          os.path.join(evaluation.uri, properties.EVALUATION_REPORT_FILENAME))
    evaluation.set_string_custom_property(properties.METRICS_PATH,
                                          os.path.join(evaluation.uri, properties.METRICS_FILENAME))
