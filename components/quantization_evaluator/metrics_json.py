"""``metrics.json``: the per-slice results of the Beam run, the sizes and latencies, assembled and gated."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

from tfx.dsl.io import fileio
from tfx.types import Artifact

from quantgate.components.quantization_evaluator.checks import CandidatePlan, EvaluationPlan, fail
from quantgate.components.quantization_evaluator.config import SMALLEST, EvaluatorConfig
from quantgate.components.quantization_evaluator.gate import (
    CLASSIFICATION,
    DROP,
    KERNEL,
    METRICS,
    GateInputs,
    GateResult,
    MetricValues,
    SliceValues,
    Thresholds,
    degradation,
    gate,
)
from quantgate.components.quantization_evaluator.host import latency_host
from quantgate.components.quantization_evaluator.inference import Latency
from quantgate.components.quantization_evaluator.metrics import OVERALL, SliceKey, slice_name
from quantgate.components.quantization_evaluator.search_holdout import search_fit_warning, search_summary
from quantgate.components.shared import properties
from quantgate.components.shared.strict_json import json_safe

SCHEMA_VERSION = 1


def _size_bytes(artifact: Artifact, name: str, fallback_path: str | None = None) -> int | None:
    if artifact.has_custom_property(name):
        return int(artifact.get_int_custom_property(name))
    return int(fileio.stat(fallback_path).length) if fallback_path else None


def read_quantization_report(quantized_model: Artifact) -> dict[str, Any] | None:
    """The Quantizer's ``quantization_report.json`` beside the model (``None`` for a model from elsewhere)."""
    path = os.path.join(quantized_model.uri, properties.QUANTIZATION_REPORT_FILENAME)
    if not fileio.exists(path):
        return None
    with fileio.open(path, "r") as f:
        return json.load(f)


def _slice_entry(key: SliceKey, values: dict[str, Any], thresholds: Thresholds) -> dict[str, Any]:
    """The slice's combiner output, with ``deltas``: for every metric both models have, the point degradation and
    its one-sided confidence bounds (``lower``, ``upper``, ``method``); ``delta`` / ``delta_upper`` are the gated
    metric's."""
    values = dict(values)
    bounds = values.pop("bounds", {})
    deltas = {}
    for metric in values["float"]:
        if metric not in METRICS:
            continue
        float_value, quant_value = values["float"].get(metric), values["quantized"].get(metric)
        delta = None
        if float_value is not None and quant_value is not None:
            delta = degradation(float_value, quant_value, METRICS[metric], thresholds.delta_type)
        deltas[metric] = {"delta": delta, "lower": None, "upper": None, "method": None, **bounds.get(metric, {})}
    entry = {"feature": key[0], "value": key[1]} if key != OVERALL else {}
    primary = deltas.get(thresholds.metric, {"delta": None, "upper": None})
    return {**entry, **values, "delta": primary["delta"], "delta_upper": primary["upper"], "deltas": deltas}


def _number(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _slice_values(name: str, entry: dict[str, Any], thresholds: Thresholds) -> SliceValues:
    def of(metric: str) -> MetricValues:
        upper = entry["deltas"].get(metric, {}).get("upper")
        return MetricValues(_number(entry["float"].get(metric)), _number(entry["quantized"].get(metric)),
                            _number(upper))

    primary = of(thresholds.metric)
    return SliceValues(name, entry["num_examples"], primary.float_value, primary.quant_value, primary.delta_upper,
                       others={metric: of(metric) for metric, _ in thresholds.extra_metrics})


def _verdict_json(verdict: GateResult, config: EvaluatorConfig, overall: dict[str, Any]) -> dict[str, Any]:
    thresholds = config.thresholds
    return {"blessed": verdict.blessed, "reason": verdict.reason, "reasons": verdict.reasons,
            "notes": verdict.notes, "warnings": verdict.warnings, "delta": verdict.delta,
            "delta_upper": verdict.delta_upper, "deltas": verdict.deltas, "threshold": verdict.threshold,
            "delta_bound": thresholds.delta_bound, "confidence": thresholds.confidence,
            "nonfinite_inputs": config.nonfinite_inputs,
            # Under 'drop', what the verdict left out; under 'refuse' nothing is dropped (it is refused).
            "dropped": {"examples": overall["nonfinite_input_examples"],
                        "nonfinite_inputs": overall["nonfinite_inputs"]}
            if config.nonfinite_inputs == DROP else {"examples": 0, "nonfinite_inputs": {}}}


# The two latency comparisons metrics.json quotes, by key: the like-for-like one (the quantized TFLite model against
# the float32 TFLite model of the same function: same interpreter, same threads, the kernel against the kernel) and
# the one against the float SavedModel's call (what the float model costs as TensorFlow serves it).
LIKE_FOR_LIKE = "float_tflite"
SAVED_MODEL = "float_saved_model"
BASELINES = {LIKE_FOR_LIKE: "float32 TFLite of the same function (same interpreter, same threads)",
             SAVED_MODEL: "float SavedModel signature call (TensorFlow)"}


def _latency_dict(latency: Latency | None) -> dict[str, Any] | None:
    """A latency as metrics.json holds it: p50 / p95 / calls / kernel, without the nested float TFLite one."""
    if latency is None:
        return None
    values = dataclasses.asdict(latency)
    values.pop("float_tflite", None)
    return values


def latency_comparison(baseline: dict[str, Any] | None, quantized: dict[str, Any], what: str) -> dict[str, Any] | None:
    """The quantized model's batch-1 p50 against ``baseline``'s: on the kernel when both were timed kernel-only,
    else end to end. ``ratio`` = quantized / baseline (below 1: faster), ``speedup`` = baseline / quantized;
    ``None`` when there is no baseline."""
    if baseline is None:
        return None
    kernel = baseline.get("kernel_p50_ms") is not None and quantized.get("kernel_p50_ms") is not None
    key = "kernel_p50_ms" if kernel else "p50_ms"
    base, quant = baseline.get(key), quantized.get(key)
    usable = all(v is not None and math.isfinite(v) and v > 0 for v in (base, quant))
    return {"baseline": what, "measure": KERNEL if kernel else "end_to_end", "baseline_p50_ms": base,
            "quantized_p50_ms": quant, "ratio": quant / base if usable else None,
            "speedup": base / quant if usable else None}


def latency_comparisons(float_latency: Latency, latency: Latency) -> dict[str, dict[str, Any] | None]:
    """``{LIKE_FOR_LIKE: ..., SAVED_MODEL: ...}`` (``latency_comparison``) for one candidate."""
    quantized = _latency_dict(latency)
    return {LIKE_FOR_LIKE: latency_comparison(_latency_dict(latency.float_tflite), quantized, BASELINES[LIKE_FOR_LIKE]),
            SAVED_MODEL: latency_comparison(_latency_dict(float_latency), quantized, BASELINES[SAVED_MODEL])}


def _candidate(results: dict[SliceKey, dict[str, Any]], candidate: CandidatePlan, config: EvaluatorConfig,
               plan: EvaluationPlan, latency: Latency, serving: dict[str, Any] | None,
               float_latency: Latency | None = None) -> tuple[dict, GateResult]:
    """One candidate's section of metrics.json and its verdict."""
    thresholds = config.thresholds
    if OVERALL not in results:  # the split's files held no record that reached the combiner
        raise fail(f"{plan.source} produced no predictions; pass a split that has examples")
    overall = _slice_entry(OVERALL, results[OVERALL], thresholds)
    slices, skipped = [], []
    for key in sorted(k for k in results if k != OVERALL):
        entry = _slice_entry(key, results[key], thresholds)
        if entry["num_examples"] >= thresholds.min_slice_size:
            slices.append(entry)
        else:
            skipped.append({"feature": key[0], "value": key[1], "num_examples": entry["num_examples"]})
    artifact = candidate.artifact
    quantization_report = read_quantization_report(artifact)
    sizes = {"float_bytes": _size_bytes(artifact, properties.FLOAT_SIZE_BYTES),
             "quantized_bytes": _size_bytes(artifact, properties.SIZE_BYTES, candidate.tflite_path),
             "float_tflite_bytes": ((quantization_report or {}).get("sizes") or {}).get("float_tflite_bytes")}
    verdict = gate(GateInputs(
        overall=_slice_values("overall", overall, thresholds),
        slices=[_slice_values(slice_name((s["feature"], s["value"])), s, thresholds) for s in slices],
        agreement=overall["agreement"] if thresholds.info.task == CLASSIFICATION else None,
        nonfinite_predictions=overall["nonfinite"],
        missing_predictions=overall["missing"],
        invalid_labels=overall.get("invalid_labels", 0),
        nonfinite_inputs=overall["nonfinite_inputs"],
        nonfinite_input_examples=overall["nonfinite_input_examples"],
        nonfinite_input_policy=config.nonfinite_inputs,
        split=config.split,
        model_bytes=sizes["quantized_bytes"],
        latency_p95_ms=latency.gated_p95_ms(thresholds.latency_measure),
        serving_compared=serving is not None,
        serving_agreement=None if serving is None else serving["agreement"],
        serving_signature=plan.serving_signature or "",
        signature_name=plan.signature_name,
    ), thresholds)
    fit = search_fit_warning(candidate.name, search_summary(artifact), overall["float"],
                             f"the gate's {overall['num_examples']} examples of split {config.split!r}",
                             config.output_kind)
    if fit:
        verdict = dataclasses.replace(verdict, warnings=[*verdict.warnings, fit])
    # output_kind beside each model's output: what its raw output held, and so whether the scores in this file
    # went through sigmoid / softmax ('logits') or are the output as it is ('probabilities').
    model = {"id": artifact.id, "uri": artifact.uri, "path": candidate.tflite_path, "output": candidate.output,
             "output_kind": config.output_kind,
             "quantization_mode": artifact.get_string_custom_property(properties.QUANTIZATION_MODE) or None,
             "sha256": artifact.get_string_custom_property(properties.SHA256) or None,
             "evaluated_sha256": candidate.tflite_sha256, "quantization_report": quantization_report}
    section = {"name": candidate.name, **model, "model": model, "overall": overall, "slices": slices,
               "skipped_slices": skipped, "sizes": sizes, "latency": _latency_dict(latency),
               "float_tflite_latency": _latency_dict(latency.float_tflite),
               "latency_comparisons": latency_comparisons(float_latency, latency) if float_latency else None,
               "verdict": _verdict_json(verdict, config, overall)}
    return section, verdict


def select(sections: list[dict[str, Any]], verdicts: list[GateResult], selection: str,
           latency_measure: str = KERNEL) -> int:
    """The chosen candidate's index: by ``selection`` (``smallest`` bytes, ``fastest`` batch-1 p50 of
    ``latency_measure``) among those passing every threshold, or among all when none passes (the blessing then
    names it, not blessed). Ties go to the other criterion, then to the wiring order."""
    passing = [i for i, v in enumerate(verdicts) if v.blessed] or list(range(len(sections)))

    def size(i: int) -> float:
        value = sections[i]["sizes"]["quantized_bytes"]
        return math.inf if value is None else value

    def speed(i: int) -> float:
        latency = sections[i]["latency"]
        value = latency.get("kernel_p50_ms") if latency_measure == KERNEL else None
        value = latency.get("p50_ms") if value is None else value
        return math.inf if value is None or math.isnan(value) else value

    key = (lambda i: (size(i), speed(i), i)) if selection == SMALLEST else (lambda i: (speed(i), size(i), i))
    return min(passing, key=key)


def build_metrics(results: list[dict[SliceKey, dict[str, Any]]], config: EvaluatorConfig, plan: EvaluationPlan,
                  model: Artifact, latency: dict[str, Any], serving: dict[str, Any] | None = None,
                  run: dict[str, Any] | None = None, search_holdout: dict[str, Any] | None = None,
                  ) -> tuple[dict, GateResult, CandidatePlan]:
    """Assembles ``metrics.json`` (schema in the README), gates every candidate and picks one by
    ``config.selection``; returns (metrics, the chosen one's verdict, the chosen candidate). ``results`` and
    ``latency['candidates']`` follow ``plan.candidates``; ``serving`` is the serving-signature comparison of
    ``run_beam_evaluation``, ``run`` the pipeline name and run id (when the orchestrator says),
    ``search_holdout`` the accuracy search's sample left out of the gate (``SearchHoldout.section``)."""
    thresholds = config.thresholds
    built = [_candidate(r, c, config, plan, lat, serving, latency["float"])
             for r, c, lat in zip(results, plan.candidates, latency["candidates"], strict=True)]
    sections, verdicts = [b[0] for b in built], [b[1] for b in built]
    chosen = select(sections, verdicts, config.selection, thresholds.latency_measure)
    section, verdict = sections[chosen], verdicts[chosen]
    if len(sections) > 1:
        section["selected"] = True
        if not verdict.blessed:
            verdict = dataclasses.replace(verdict, reasons=["no candidate passes every threshold"] + [
                f"{s['name']}: {'; '.join(v.reasons)}" for s, v in zip(sections, verdicts, strict=True)])
            section["verdict"] = {**section["verdict"], "reason": verdict.reason, "reasons": verdict.reasons}
    metrics = {
        "schema_version": SCHEMA_VERSION,
        "metric": thresholds.metric,
        "task": thresholds.info.task,
        "higher_is_better": thresholds.info.higher_is_better,
        "split": config.split,
        "label_key": config.label_key,
        "slicing_feature_keys": list(config.slicing_feature_keys),
        "models": {
            "float": {"id": model.id, "uri": model.uri, "signature_name": plan.signature_name,
                      "output": plan.float_output, "output_kind": config.output_kind},
            "quantized": section["model"],
        },
        "run": {"pipeline_name": None, "run_id": None, **(run or {})},
        "latency_host": latency_host(),
        "transform_graph": plan.transform_graph,
        "serving_signature_agreement": serving,
        "search_holdout": search_holdout,
        "overall": section["overall"],
        "slices": section["slices"],
        "skipped_slices": section["skipped_slices"],
        # float: the float SavedModel; float_tflite: the chosen candidate's float32 TFLite reference;
        # comparisons: the quantized model against each (LIKE_FOR_LIKE, SAVED_MODEL).
        "latency_ms": {"float": _latency_dict(latency["float"]), "quantized": section["latency"],
                       "float_tflite": section["float_tflite_latency"], "comparisons": section["latency_comparisons"]},
        "sizes": section["sizes"],
        "thresholds": dataclasses.asdict(thresholds),
        "selection": config.selection,
        "verdict": section["verdict"],
    }
    if len(sections) > 1:
        for s in sections:
            del s["model"]
        metrics["candidates"] = sections
        metrics["selected_candidate"] = chosen
    else:
        del section["model"]
    return json_safe(metrics), verdict, plan.candidates[chosen]
