"""quantgate's lineage questions: where did a pushed model come from, why did a run push nothing, what did it
gate on. Built on the generic walk in ``events``; the names of properties and input keys are the components' own
(``components.shared.properties``)."""

from __future__ import annotations

import json
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from quantgate.components.shared import properties
from quantgate.pipelines.lineage.events import (
    OUTPUT_EVENTS,
    RUN_CONTEXT_TYPE,
    LineageNode,
    Reader,
    input_artifacts,
    latest_complete_execution,
    output_artifacts,
    producer,
    unfinished_executions,
    walk_upstream,
)
from quantgate.pipelines.lineage.store import LineageError

PUSHED_MODEL_TYPE = "PushedModel"


# A pushed model's chain: (role, the role it hangs off, the input key of that role's producer).
CHAIN = (
    ("pushed model", None, None),
    ("blessing", "pushed model", properties.MODEL_BLESSING_KEY),
    ("float blessing", "pushed model", properties.FLOAT_BLESSING_KEY),
    ("quantized model", "pushed model", properties.MODEL_KEY),
    ("representative dataset", "quantized model", properties.REPRESENTATIVE_DATASET_KEY),
    # the graph the Quantizer calibrated through (a pipeline with Transform); its producer is the Transform execution
    ("transform graph", "quantized model", properties.TRANSFORM_GRAPH_KEY),
    ("trainer model", "quantized model", properties.MODEL_KEY),
)
EXAMPLES_ROLE, EXAMPLES_TYPE = "examples", "Examples"


def _require_nonempty(store: metadata_store.MetadataStore) -> None:
    if not store.get_artifacts(list_options=metadata_store.ListOptions(limit=1)):
        raise LineageError("the ML Metadata store is empty: no pipeline has run against it")


def latest_pushed_model(store: metadata_store.MetadataStore) -> metadata_store_pb2.Artifact:
    """The newest ``PushedModel`` that was actually pushed (``pushed`` == 1)."""
    _require_nonempty(store)
    pushes = store.get_artifacts_by_type(PUSHED_MODEL_TYPE)
    pushed = [a for a in pushes if a.custom_properties[properties.PUSHED].int_value == 1]
    if not pushed:
        raise LineageError(f"nothing was pushed in this store ({len(pushes)} push attempts refused); "
                           "ask why with --why-not")
    return max(pushed, key=lambda a: (a.create_time_since_epoch, a.id))


def pushed_chain(store: metadata_store.MetadataStore, pushed: str | int = "latest") -> dict[str, Any]:
    """Where a pushed model came from: ``{"chain": [{"role", "artifact", "producer"}...], "nodes": [...]}``.

    ``pushed`` is ``"latest"`` or the MLMD id of a ``PushedModel``. The chain follows input keys from the pushed
    model (see ``CHAIN``) and ends with the nearest examples; roles that do not exist upstream (e.g. no
    representative dataset behind a stock Trainer model, no transform graph without Transform) are left out.
    ``nodes`` is the whole upstream walk.
    """
    reader = Reader(store)
    if pushed == "latest":
        start = latest_pushed_model(store)
    else:
        _require_nonempty(store)
        start = reader.artifact(int(pushed))
    start_type = reader.artifact_type(start)
    if start_type != PUSHED_MODEL_TYPE:
        raise LineageError(f"artifact {start.id} is a {start_type}, not a {PUSHED_MODEL_TYPE}: pass the id of a "
                           "pusher's pushed_model output, or 'latest'")
    nodes = walk_upstream(store, start.id)
    by_id = {n.artifact.id: n for n in nodes}
    found: dict[str, LineageNode] = {}
    for role, parent, key in CHAIN:
        if parent is None:
            found[role] = by_id[start.id]
        elif parent in found and _inputs(found[parent].inputs, key):
            found[role] = _pushed_candidate([by_id[i] for i in _inputs(found[parent].inputs, key)], by_id[start.id])
    # The nearest Examples upstream, whichever component read them (Trainer, RepresentativeDatasetGen, ...).
    examples = next((n for n in nodes if n.artifact.type == EXAMPLES_TYPE), None)
    chain = [{"role": role, **_node_dict(found[role])} for role, _, _ in CHAIN if role in found]
    if examples is not None:
        chain.append({"role": EXAMPLES_ROLE, **_node_dict(examples)})
    return {"chain": chain, "nodes": [_node_dict(n) for n in nodes]}


def _inputs(inputs: dict[str, list[Any]], key: str) -> list[Any]:
    """The inputs under ``key``; for ``model`` those under every candidate key too (``model_1`` ...)."""
    keys = [properties.candidate_model_key(i) for i in range(properties.MAX_CANDIDATES)] \
        if key == properties.MODEL_KEY else [key]
    return [value for k in keys for value in inputs.get(k, [])]


def _pushed_candidate(candidates: list[LineageNode], pushed: LineageNode) -> LineageNode:
    """Of several candidates in one input channel, the one whose sha256 the pushed model carries (the pusher ships
    the candidate its blessing names); the first otherwise (one artifact, or no sha256 to tell them apart)."""
    sha256 = pushed.artifact.properties.get(properties.SHA256)
    return next((c for c in candidates if sha256 and c.artifact.properties.get(properties.SHA256) == sha256),
                candidates[0])


def _node_dict(node: LineageNode) -> dict[str, Any]:
    return {"artifact": vars(node.artifact), "producer": node.producer and vars(node.producer),
            "inputs": node.inputs}


def _run_context(store: metadata_store.MetadataStore, run_id: str | None) -> metadata_store_pb2.Context:
    runs = store.get_contexts_by_type(RUN_CONTEXT_TYPE)
    if not runs:
        raise LineageError("no pipeline run in this ML Metadata store")
    if run_id is None:
        # The newest run, whether it reached the pusher or not: a killed run is the one to explain.
        return max(runs, key=lambda r: (r.create_time_since_epoch, r.id))
    for run in runs:
        if run.name == run_id:
            return run
    names = ", ".join(sorted(r.name for r in runs)[-3:])
    raise LineageError(f"no pipeline run {run_id!r} in this store (newest runs: {names})")


def _pushes_of_run(
    store: metadata_store.MetadataStore, run_context_id: int
) -> list[tuple[metadata_store_pb2.Execution, metadata_store_pb2.Artifact]]:
    executions = {e.id: e for e in store.get_executions_by_context(run_context_id)}
    pushes_by_id = {a.id: a for a in store.get_artifacts_by_type(PUSHED_MODEL_TYPE)}
    events = store.get_events_by_execution_ids(list(executions))
    return [(executions[e.execution_id], pushes_by_id[e.artifact_id]) for e in events
            if e.type in OUTPUT_EVENTS and e.artifact_id in pushes_by_id]


def why_not(store: metadata_store.MetadataStore, run_id: str | None = None) -> dict[str, Any]:
    """Why a pipeline run (default: the newest) pushed nothing: the pushers' and blessings' reasons, and the
    executions that failed or did not finish (``unfinished``; a run killed before the gate has only those)."""
    _require_nonempty(store)
    run = _run_context(store, run_id)
    reader = Reader(store)
    refused = []
    for execution, pushed_model in _pushes_of_run(store, run.id):
        if pushed_model.custom_properties[properties.PUSHED].int_value == 1:
            destination = pushed_model.custom_properties[properties.PUSHED_DESTINATION].string_value
            raise LineageError(f"pipeline run {run.name!r} did push (PushedModel {pushed_model.id} at "
                               f"{destination}): ask where it came from with --pushed {pushed_model.id}")
        inputs = input_artifacts(store, execution.id)
        blessings = [a for key in (properties.MODEL_BLESSING_KEY, properties.FLOAT_BLESSING_KEY)
                     for a in inputs.get(key, ())]
        refused.append({
            "pushed_model": vars(reader.artifact_info(pushed_model)),
            "pusher": vars(reader.execution_info(execution)),
            "blessings": [vars(reader.artifact_info(b)) for b in blessings],
        })
    unfinished = [vars(e) for e in unfinished_executions(store, run.name)]
    return {"run_id": run.name, "refused": refused, "unfinished": unfinished}


def run_summary(store: metadata_store.MetadataStore, pipeline_name: str, pusher_id: str) -> dict[str, Any] | None:
    """The numbers a run gated on, from its newest pusher execution: metrics, delta, threshold, sizes, verdict,
    the candidates offered to the pusher (``candidates``: id, mode, size, which one the blessing chose), the
    evaluation's ``report_path``, and the run's executions that failed or did not finish (``unfinished``).

    The metric values are the ``float_<metric>`` / ``quantized_<metric>`` properties of the evaluation that the
    blessing's producer wrote beside it; ``None`` where a property is missing (e.g. a stock Evaluator's blessing).
    """
    execution = latest_complete_execution(store, pipeline_name, pusher_id)
    if execution is None:
        return None
    reader = Reader(store)
    (pushed_model,) = output_artifacts(store, execution.id)[properties.PUSHED_MODEL_KEY]
    inputs = input_artifacts(store, execution.id)
    (blessing_artifact,) = inputs[properties.MODEL_BLESSING_KEY]
    blessing_producer = producer(store, blessing_artifact.id)
    siblings = output_artifacts(store, blessing_producer.id) if blessing_producer else {}
    evaluation = reader.artifact_info(siblings[properties.EVALUATION_KEY][0]).properties if siblings.get(properties.EVALUATION_KEY) else {}
    blessing = reader.artifact_info(blessing_artifact).properties
    current_model_id = blessing.get(properties.CURRENT_MODEL_ID)  # several candidates: the one the blessing chose
    candidates = _inputs(inputs, properties.MODEL_KEY)
    chosen = next((m for m in candidates if m.id == current_model_id), candidates[0])
    model = reader.artifact_info(chosen).properties
    pushed = reader.artifact_info(pushed_model).properties
    metric = blessing.get(properties.METRIC)
    run_id = reader.execution_info(execution).run_id
    latency = _latency_comparisons(evaluation.get(properties.METRICS_PATH))
    return {
        "metric": metric,
        "float_metric": evaluation.get(properties.float_metric(metric)),
        "quantized_metric": evaluation.get(properties.quantized_metric(metric)),
        "delta": blessing.get(properties.DELTA),
        "threshold": blessing.get(properties.THRESHOLD),
        "quantization_mode": model.get(properties.QUANTIZATION_MODE),
        "float_size_bytes": model.get(properties.FLOAT_SIZE_BYTES),
        "quantized_size_bytes": model.get(properties.SIZE_BYTES),
        # The same function converted to float32 TFLite (weights only): the like-for-like size.
        "float_tflite_size_bytes": model.get(properties.FLOAT_TFLITE_SIZE_BYTES),
        # The delta's one-sided upper confidence bound, its confidence, and which of point / upper the gate compared.
        "delta_upper": blessing.get(properties.DELTA_UPPER),
        "confidence": blessing.get(properties.CONFIDENCE),
        "delta_bound": blessing.get(properties.DELTA_BOUND),
        # metrics.json's latency_ms.comparisons of the chosen candidate: 'float_tflite' (like for like: the float32
        # TFLite of the same function, same interpreter and threads) and 'float_saved_model'; None when unreadable.
        "latency_comparisons": latency,
        "candidates": [{"id": m.id, "chosen": m.id == chosen.id,
                        "quantization_mode": props.get(properties.QUANTIZATION_MODE),
                        "size_bytes": props.get(properties.SIZE_BYTES)}
                       for m, props in ((m, reader.artifact_info(m).properties) for m in candidates)],
        "verdict": "blessed" if blessing.get(properties.BLESSED) == 1 else "not blessed",
        "pushed": pushed.get(properties.PUSHED) == 1,
        "pushed_destination": pushed.get(properties.PUSHED_DESTINATION),
        "reason": pushed.get(properties.REASON),
        "pushed_model_id": pushed_model.id,
        "report_path": evaluation.get(properties.REPORT_PATH),
        "run_id": run_id,
        "unfinished": [vars(e) for e in unfinished_executions(store, run_id)] if run_id else [],
    }


def _latency_comparisons(metrics_path: str | None) -> dict[str, Any] | None:
    """``latency_ms.comparisons`` of the evaluation's metrics.json, read as a local file (the lineage CLI imports no
    TensorFlow filesystem); ``None`` when there is none, it is elsewhere (``gs://``) or it predates the comparisons."""
    if not metrics_path:
        return None
    try:
        with open(metrics_path, encoding="utf-8") as f:
            metrics = json.load(f)
    except (OSError, ValueError):
        return None
    return (metrics.get("latency_ms") or {}).get("comparisons")
