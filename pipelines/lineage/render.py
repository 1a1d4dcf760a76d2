"""Lineage answers as text: the end-of-run summary table, the chain of a pushed model, the refusals of a run."""

from __future__ import annotations

from typing import Any

from quantgate.components.shared import properties

# The properties worth a glance, by artifact type, in the text rendering (JSON carries them all).
SHOWN_PROPERTIES: dict[str, tuple[str, ...]] = {
    "PushedModel": (properties.PUSHED, properties.PUSHED_VERSION, properties.PUSHED_DESTINATION,
                    properties.SHA256, properties.REASON),
    "ModelBlessing": (properties.BLESSED, properties.METRIC, properties.DELTA_TYPE, properties.DELTA,
                      properties.THRESHOLD, properties.REASON, properties.CURRENT_MODEL_ID),
    "Model": (properties.QUANTIZATION_MODE, properties.ENGINE, properties.SIZE_BYTES, properties.FLOAT_SIZE_BYTES,
              properties.SHA256, properties.TRANSFORM_GRAPH_ID),
    properties.REPRESENTATIVE_DATASET_TYPE: (properties.SEED, properties.NUM_EXAMPLES, properties.STRATEGY,
                                         properties.SPLIT, properties.SHA256),
    "Examples": ("span", "split_names"),  # ExampleGen's own PROPERTIES
}



def _number(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _size(value: Any) -> str:
    return "n/a" if value is None else f"{value:,} bytes"


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run table of ``run_summary``."""
    mode = summary["quantization_mode"] or "quantized"
    metric = summary["metric"] or "metric"
    outcome = ("pushed to", summary["pushed_destination"]) if summary["pushed"] else ("not pushed", summary["reason"])
    rows = [
        (f"float {metric}", _number(summary["float_metric"])),
        (f"{mode} {metric}", _number(summary["quantized_metric"])),
        ("delta", _number(summary["delta"])),
        *_delta_bound_rows(summary),
        ("threshold", _number(summary["threshold"])),
        ("float size", _size(summary["float_size_bytes"])),
        (f"{mode} size", _size(summary["quantized_size_bytes"])),
        *_like_for_like_rows(summary, mode),
        ("verdict", summary["verdict"]),
        outcome,
    ]
    if len(summary.get("candidates") or ()) > 1:
        rows.insert(-2, ("candidates", ", ".join(
            f"{c['quantization_mode'] or '#' + str(c['id'])} {_size(c['size_bytes'])}{' (chosen)' if c['chosen'] else ''}"
            for c in summary["candidates"])))
    if summary.get("report_path"):
        rows.append(("report", summary["report_path"]))
    rows += [(_unfinished_state(e), _execution(e)) for e in summary.get("unfinished", ())]
    width = max(len(name) for name, _ in rows)
    rule = "-" * min(100, width + 3 + max(len(str(value)) for _, value in rows))
    lines = [f"quantgate summary, run {summary['run_id']}", rule]
    lines += [f"{name:<{width}} | {value}" for name, value in rows]
    return "\n".join([*lines, rule])


def _times(baseline: Any, value: Any, smaller: str, larger: str) -> str:
    """``3.83x smaller`` (baseline over value) / ``1.02x larger``; empty when either is missing or not positive."""
    if not isinstance(baseline, (int, float)) or not isinstance(value, (int, float)) or baseline <= 0 or value <= 0:
        return ""
    ratio = baseline / value
    return f"{ratio:.2f}x {smaller}" if ratio >= 1 else f"{1 / ratio:.2f}x {larger}"


def _delta_bound_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """``delta 95% upper bound | 0.0123 (the gate compares the point delta)``, when the blessing recorded one."""
    if summary.get("delta_upper") is None:
        return []
    confidence = summary.get("confidence")
    label = f"delta {confidence:.0%} upper bound" if isinstance(confidence, float) else "delta upper bound"
    compared = {"upper": "the gate compares this bound", "point": "the gate compares the point delta"}.get(
        summary.get("delta_bound") or "", "")
    return [(label, _number(summary["delta_upper"]) + (f" ({compared})" if compared else ""))]


def _like_for_like_rows(summary: dict[str, Any], mode: str) -> list[tuple[str, str]]:
    """The quantized model against the float32 TFLite of the same function: size, and batch-1 latency (kernel
    against kernel, same interpreter and threads); then the latency against the float SavedModel's call."""
    rows = []
    float_tflite, quantized = summary.get("float_tflite_size_bytes"), summary.get("quantized_size_bytes")
    if float_tflite is not None and quantized is not None:
        rows.append((f"{mode} vs float32 TFLite size",
                     f"{quantized:,} / {float_tflite:,} bytes: {_times(float_tflite, quantized, 'smaller', 'larger')}"))
    comparisons = summary.get("latency_comparisons") or {}
    for key, baseline in (("float_tflite", "float32 TFLite"), ("float_saved_model", "float SavedModel")):
        comparison = comparisons.get(key)
        if not comparison:
            continue
        measure = "kernel" if comparison.get("measure") == "kernel" else "end-to-end"
        base, value = comparison.get("baseline_p50_ms"), comparison.get("quantized_p50_ms")
        rows.append((f"{measure} latency {mode} vs {baseline}",
                     f"{_number(value)} / {_number(base)} ms p50: {_times(base, value, 'faster', 'slower') or 'n/a'}"
                     + (" (same interpreter, same threads)" if key == "float_tflite" else "")))
    return rows


def _shown(artifact: dict[str, Any]) -> str:
    keys = SHOWN_PROPERTIES.get(artifact["type"], ())
    values = [f"{k}={artifact['properties'][k]}" for k in keys if k in artifact["properties"]]
    return " ".join(values)


def format_chain(result: dict[str, Any]) -> str:
    """The chain of ``pushed_chain`` as text, one artifact and its producer per entry."""
    lines = []
    for entry in result["chain"]:
        artifact, execution = entry["artifact"], entry["producer"]
        lines.append(f"{entry['role']:<23} #{artifact['id']} {artifact['type']}  {_shown(artifact)}".rstrip())
        lines.append(f"{'':<23} uri {artifact['uri']}")
        if execution:
            lines.append(f"{'':<23} by {execution['component_id']} (execution #{execution['id']}, "
                         f"{execution['state']}, run {execution['run_id']}, {execution['finished']})")
    return "\n".join(lines)


def _unfinished_state(execution: dict[str, Any]) -> str:
    # RUNNING / NEW after the run ended: the process was killed or MLMD could not record the end (full disk).
    return "failed" if execution["state"] in ("FAILED", "CANCELED") else "did not finish"


def _execution(execution: dict[str, Any]) -> str:
    return f"{execution['component_id']} (execution #{execution['id']}, started {execution['started']})"


def format_why_not(result: dict[str, Any]) -> str:
    """The refusals of ``why_not`` as text, then the executions that failed or did not finish."""
    lines = [f"pipeline run {result['run_id']} pushed nothing:"]
    unfinished = result.get("unfinished", ())
    # Any Pusher (ours or TFX's) by its type name: a FAILED one recorded no output, so it is only here.
    pusher_stopped = any(e["type"].endswith("Pusher") for e in unfinished)
    if not result["refused"] and not pusher_stopped:
        lines.append("  no pusher ran: the run stopped before the gate")
    for refusal in result["refused"]:
        pusher, pushed = refusal["pusher"], refusal["pushed_model"]
        lines.append(f"  {pusher['component_id']} (execution #{pusher['id']}): "
                     f"{pushed['properties'].get(properties.REASON) or 'not blessed'}")
        for blessing in refusal["blessings"]:
            lines.append(f"    blessing #{blessing['id']}: {_shown(blessing)}")
    for execution in unfinished:
        why = f": {execution['reason']}" if execution.get("reason") else ""
        lines.append(f"  {execution['component_id']} (execution #{execution['id']}): "
                     f"{_unfinished_state(execution)} (started {execution['started']}){why}")
    return "\n".join(lines)
