"""Reading ML Metadata: what a pipeline run produced and where it came from.

Everything here walks events (``get_events_by_execution_ids`` / ``get_events_by_artifact_ids`` /
``get_executions_by_id``) instead of ``filter_query``, which later MLMD releases removed. Only ``ml_metadata`` is
imported, so the lineage CLI answers in about a second instead of waiting for TensorFlow.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

NODE_CONTEXT_TYPE = "node"
RUN_CONTEXT_TYPE = "pipeline_run"
PUSHED_MODEL_TYPE = "PushedModel"
_Execution = metadata_store_pb2.Execution
_Event = metadata_store_pb2.Event
_OUTPUT_EVENTS = (_Event.OUTPUT, _Event.DECLARED_OUTPUT)
_INPUT_EVENTS = (_Event.INPUT, _Event.DECLARED_INPUT)

# The properties worth a glance, by artifact type, in the text rendering (JSON carries them all).
SHOWN_PROPERTIES: dict[str, tuple[str, ...]] = {
    "PushedModel": ("pushed", "pushed_version", "pushed_destination", "sha256", "reason"),
    "ModelBlessing": ("blessed", "metric", "delta_type", "delta", "threshold", "reason", "current_model_id"),
    "Model": ("quantization_mode", "engine", "size_bytes", "float_size_bytes", "sha256"),
    "components.RepresentativeDataset": ("seed", "num_examples", "strategy", "split", "sha256"),
    "Examples": ("span", "split_names"),
}


class LineageError(Exception):
    """A lineage question MLMD cannot answer (bad id, empty store, unreachable database): a one-line message."""


def open_sqlite_store(path: str, *, read_only: bool = False) -> metadata_store.MetadataStore:
    """Opens an existing SQLite MLMD file (read/write unless ``read_only``); refuses a missing file rather than
    creating an empty store."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no ML Metadata store at {path}: pass the metadata.sqlite of a pipeline run")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    modes = metadata_store_pb2.SqliteMetadataSourceConfig
    config.sqlite.connection_mode = modes.READONLY if read_only else modes.READWRITE
    return metadata_store.MetadataStore(config)


@dataclass(frozen=True)
class MySQLConfig:
    """Where a MySQL / MariaDB MLMD store lives (what Kubeflow's MLMD uses)."""

    host: str
    database: str
    user: str
    port: int = 3306
    password: str = ""

    def connection_config(self) -> metadata_store_pb2.ConnectionConfig:
        config = metadata_store_pb2.ConnectionConfig()
        config.mysql.host, config.mysql.port = self.host, self.port
        config.mysql.database, config.mysql.user = self.database, self.user
        if self.password:
            config.mysql.password = self.password
        return config


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    # MLMD's C++ layer logs connection failures straight to file descriptor 2 (glog), around the Python
    # exception we turn into a one-line message; silence the descriptor while connecting.
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_mysql_store(mysql: MySQLConfig) -> metadata_store.MetadataStore:
    """Connects to a MySQL / MariaDB MLMD store; an unreachable server is a ``LineageError``."""
    try:
        with _quiet_native_stderr():
            return metadata_store.MetadataStore(mysql.connection_config())
    except RuntimeError as error:
        detail = str(error).split(":")[0].strip() or "connection failed"  # the rest is empty errno fields
        raise LineageError(f"cannot reach MLMD on MySQL {mysql.user}@{mysql.host}:{mysql.port}/{mysql.database} "
                           f"({detail}); check that the server runs and the database and user exist") from error


def latest_complete_execution(
    store: metadata_store.MetadataStore, pipeline_name: str, component_id: str
) -> metadata_store_pb2.Execution | None:
    """The newest COMPLETE or CACHED execution of a component of a pipeline, or ``None``."""
    context = store.get_context_by_type_and_name(NODE_CONTEXT_TYPE, f"{pipeline_name}.{component_id}")
    if context is None:
        return None
    done = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
    executions = [e for e in store.get_executions_by_context(context.id) if e.last_known_state in done]
    return max(executions, key=lambda e: (e.create_time_since_epoch, e.id), default=None)


def _artifacts_by_key(
    store: metadata_store.MetadataStore, execution_id: int, event_types: tuple[int, ...]
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in event_types]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    by_key: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        by_key.setdefault(key, []).append(artifacts[event.artifact_id])
    return by_key


def output_artifacts(
    store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's output artifacts by output key."""
    return _artifacts_by_key(store, execution_id, _OUTPUT_EVENTS)


def input_artifacts(
    store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's input artifacts by input key."""
    return _artifacts_by_key(store, execution_id, _INPUT_EVENTS)


def producer(store: metadata_store.MetadataStore, artifact_id: int) -> metadata_store_pb2.Execution | None:
    """The execution that produced an artifact, or ``None`` for an artifact nothing produced (an import).

    A cached execution also records an OUTPUT event to the artifact it reused, so the producer is the earliest
    COMPLETE execution among the artifact's OUTPUT events, not any of them.
    """
    ids = [e.execution_id for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in _OUTPUT_EVENTS]
    executions = store.get_executions_by_id(ids)
    complete = [e for e in executions if e.last_known_state == _Execution.COMPLETE]
    return min(complete or executions, key=lambda e: (e.create_time_since_epoch, e.id), default=None)


def plain(value: metadata_store_pb2.Value) -> Any:
    """An MLMD property value as a plain Python value (structs and protos as text, NaN as ``None``)."""
    kind = value.WhichOneof("value")
    if kind == "double_value" and math.isnan(value.double_value):
        return None  # the evaluator's "undefined"; JSON has no NaN
    if kind in ("int_value", "double_value", "string_value", "bool_value"):
        return getattr(value, kind)
    return str(getattr(value, kind)) if kind else None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


@dataclass
class ExecutionInfo:
    """An execution, with the component and pipeline run it belongs to."""

    id: int
    component_id: str
    type: str
    state: str
    run_id: str | None
    started: str
    finished: str


@dataclass
class ArtifactInfo:
    """An artifact with its plain-valued properties (custom ones included)."""

    id: int
    type: str
    uri: str
    created: str
    properties: dict[str, Any]


@dataclass
class LineageNode:
    """One artifact upstream of the start, the execution that produced it and that execution's inputs (ids)."""

    artifact: ArtifactInfo
    producer: ExecutionInfo | None
    inputs: dict[str, list[int]] = field(default_factory=dict)


class _Reader:
    """Caches type names and contexts while one question is answered."""

    def __init__(self, store: metadata_store.MetadataStore) -> None:
        self.store = store
        self._artifact_types = {t.id: t.name for t in store.get_artifact_types()}
        self._context_types = {t.id: t.name for t in store.get_context_types()}

    def artifact_type(self, artifact: metadata_store_pb2.Artifact) -> str:
        return artifact.type or self._artifact_types.get(artifact.type_id, str(artifact.type_id))

    def artifact_info(self, artifact: metadata_store_pb2.Artifact) -> ArtifactInfo:
        properties = {k: plain(v) for k, v in artifact.properties.items()}
        properties.update((k, plain(v)) for k, v in artifact.custom_properties.items())
        return ArtifactInfo(artifact.id, self.artifact_type(artifact), artifact.uri,
                            _iso(artifact.create_time_since_epoch), properties)

    def execution_info(self, execution: metadata_store_pb2.Execution) -> ExecutionInfo:
        component, run_id = execution.type.rsplit(".", 1)[-1], None
        for context in self.store.get_contexts_by_execution(execution.id):
            kind = self._context_types.get(context.type_id)
            if kind == NODE_CONTEXT_TYPE:
                component = context.name.split(".", 1)[-1]  # "<pipeline>.<component id>"
            elif kind == RUN_CONTEXT_TYPE:
                run_id = context.name
        return ExecutionInfo(execution.id, component, execution.type,
                             _Execution.State.Name(execution.last_known_state), run_id,
                             _iso(execution.create_time_since_epoch), _iso(execution.last_update_time_since_epoch))

    def artifact(self, artifact_id: int) -> metadata_store_pb2.Artifact:
        found = self.store.get_artifacts_by_id([artifact_id])
        if not found:
            raise LineageError(f"no artifact with id {artifact_id} in this ML Metadata store")
        return found[0]


def walk_upstream(store: metadata_store.MetadataStore, artifact_id: int) -> list[LineageNode]:
    """Every artifact the given one was derived from, itself first, breadth first, each once."""
    reader = _Reader(store)
    nodes: list[LineageNode] = []
    queue, seen = deque([reader.artifact(artifact_id)]), {artifact_id}
    while queue:
        artifact = queue.popleft()
        execution = producer(store, artifact.id)
        node = LineageNode(reader.artifact_info(artifact), execution and reader.execution_info(execution))
        if execution is not None:
            for key, inputs in sorted(input_artifacts(store, execution.id).items()):
                node.inputs[key] = [a.id for a in inputs]
                for upstream in inputs:
                    if upstream.id not in seen:
                        seen.add(upstream.id)
                        queue.append(upstream)
        nodes.append(node)
    return nodes


# A pushed model's chain: (role, the role it hangs off, the input key of that role's producer).
CHAIN = (
    ("pushed model", None, None),
    ("blessing", "pushed model", "model_blessing"),
    ("float blessing", "pushed model", "float_blessing"),
    ("quantized model", "pushed model", "model"),
    ("representative dataset", "quantized model", "representative_dataset"),
    ("trainer model", "quantized model", "model"),
)
EXAMPLES_ROLE, EXAMPLES_TYPE = "examples", "Examples"


def _require_nonempty(store: metadata_store.MetadataStore) -> None:
    if not store.get_artifacts(list_options=metadata_store.ListOptions(limit=1)):
        raise LineageError("the ML Metadata store is empty: no pipeline has run against it")


def latest_pushed_model(store: metadata_store.MetadataStore) -> metadata_store_pb2.Artifact:
    """The newest ``PushedModel`` that was actually pushed (``pushed`` == 1)."""
    _require_nonempty(store)
    pushes = store.get_artifacts_by_type(PUSHED_MODEL_TYPE)
    pushed = [a for a in pushes if a.custom_properties["pushed"].int_value == 1]
    if not pushed:
        raise LineageError(f"nothing was pushed in this store ({len(pushes)} push attempts refused); "
                           "ask why with --why-not")
    return max(pushed, key=lambda a: (a.create_time_since_epoch, a.id))


def pushed_chain(store: metadata_store.MetadataStore, pushed: str | int = "latest") -> dict[str, Any]:
    """Where a pushed model came from: ``{"chain": [{"role", "artifact", "producer"}...], "nodes": [...]}``.

    ``pushed`` is ``"latest"`` or the MLMD id of a ``PushedModel``. The chain follows input keys from the pushed
    model (see ``CHAIN``) and ends with the nearest examples; roles that do not exist upstream (e.g. no
    representative dataset behind a stock Trainer model) are left out. ``nodes`` is the whole upstream walk.
    """
    reader = _Reader(store)
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
        elif parent in found and found[parent].inputs.get(key):
            found[role] = by_id[found[parent].inputs[key][0]]
    # The nearest Examples upstream, whichever component read them (Trainer, RepresentativeDatasetGen, ...).
    examples = next((n for n in nodes if n.artifact.type == EXAMPLES_TYPE), None)
    chain = [{"role": role, **_node_dict(found[role])} for role, _, _ in CHAIN if role in found]
    if examples is not None:
        chain.append({"role": EXAMPLES_ROLE, **_node_dict(examples)})
    return {"chain": chain, "nodes": [_node_dict(n) for n in nodes]}


def _node_dict(node: LineageNode) -> dict[str, Any]:
    return {"artifact": vars(node.artifact), "producer": node.producer and vars(node.producer),
            "inputs": node.inputs}


def _run_context(store: metadata_store.MetadataStore, run_id: str | None) -> metadata_store_pb2.Context:
    runs = store.get_contexts_by_type(RUN_CONTEXT_TYPE)
    if run_id is None:
        # The newest run that tried to push.
        runs = [r for r in runs if _pushes_of_run(store, r.id)]
        if not runs:
            raise LineageError("no pipeline run in this store has a pusher execution")
        return max(runs, key=lambda r: (r.create_time_since_epoch, r.id))
    for run in runs:
        if run.name == run_id:
            return run
    names = ", ".join(sorted(r.name for r in runs)[-3:]) or "none"
    raise LineageError(f"no pipeline run {run_id!r} in this store (newest runs: {names})")


def _pushes_of_run(
    store: metadata_store.MetadataStore, run_context_id: int
) -> list[tuple[metadata_store_pb2.Execution, metadata_store_pb2.Artifact]]:
    executions = {e.id: e for e in store.get_executions_by_context(run_context_id)}
    pushes_by_id = {a.id: a for a in store.get_artifacts_by_type(PUSHED_MODEL_TYPE)}
    events = store.get_events_by_execution_ids(list(executions))
    return [(executions[e.execution_id], pushes_by_id[e.artifact_id]) for e in events
            if e.type in _OUTPUT_EVENTS and e.artifact_id in pushes_by_id]


def why_not(store: metadata_store.MetadataStore, run_id: str | None = None) -> dict[str, Any]:
    """Why a pipeline run (default: the newest that tried) pushed nothing: the pushers' and blessings' reasons."""
    _require_nonempty(store)
    run = _run_context(store, run_id)
    pushes = _pushes_of_run(store, run.id)
    if not pushes:
        raise LineageError(f"pipeline run {run.name!r} has no pusher execution: nothing was gated")
    reader = _Reader(store)
    refused = []
    for execution, pushed_model in pushes:
        if pushed_model.custom_properties["pushed"].int_value == 1:
            destination = pushed_model.custom_properties["pushed_destination"].string_value
            raise LineageError(f"pipeline run {run.name!r} did push (PushedModel {pushed_model.id} at "
                               f"{destination}): ask where it came from with --pushed {pushed_model.id}")
        blessings = [a for key, arts in input_artifacts(store, producer(store, pushed_model.id).id).items()
                     if "blessing" in key for a in arts]
        refused.append({
            "pushed_model": vars(reader.artifact_info(pushed_model)),
            "pusher": vars(reader.execution_info(execution)),
            "blessings": [vars(reader.artifact_info(b)) for b in blessings],
        })
    return {"run_id": run.name, "refused": refused}


def run_summary(store: metadata_store.MetadataStore, pipeline_name: str, pusher_id: str) -> dict[str, Any] | None:
    """The numbers a run gated on, from its newest pusher execution: metrics, delta, threshold, sizes, verdict.

    The metric values are the ``float_<metric>`` / ``quantized_<metric>`` properties of the evaluation that the
    blessing's producer wrote beside it; ``None`` where a property is missing (e.g. a stock Evaluator's blessing).
    """
    execution = latest_complete_execution(store, pipeline_name, pusher_id)
    if execution is None:
        return None
    reader = _Reader(store)
    (pushed_model,) = output_artifacts(store, execution.id)["pushed_model"]
    inputs = input_artifacts(store, execution.id)
    (blessing_artifact,) = inputs["model_blessing"]
    blessing_producer = producer(store, blessing_artifact.id)
    siblings = output_artifacts(store, blessing_producer.id) if blessing_producer else {}
    evaluation = reader.artifact_info(siblings["evaluation"][0]).properties if siblings.get("evaluation") else {}
    blessing = reader.artifact_info(blessing_artifact).properties
    model = reader.artifact_info(inputs["model"][0]).properties
    pushed = reader.artifact_info(pushed_model).properties
    metric = blessing.get("metric")
    return {
        "metric": metric,
        "float_metric": evaluation.get(f"float_{metric}"),
        "quantized_metric": evaluation.get(f"quantized_{metric}"),
        "delta": blessing.get("delta"),
        "threshold": blessing.get("threshold"),
        "quantization_mode": model.get("quantization_mode"),
        "float_size_bytes": model.get("float_size_bytes"),
        "quantized_size_bytes": model.get("size_bytes"),
        "verdict": "blessed" if blessing.get("blessed") == 1 else "not blessed",
        "pushed": pushed.get("pushed") == 1,
        "pushed_destination": pushed.get("pushed_destination"),
        "reason": pushed.get("reason"),
        "pushed_model_id": pushed_model.id,
        "run_id": reader.execution_info(execution).run_id,
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
        ("threshold", _number(summary["threshold"])),
        ("float size", _size(summary["float_size_bytes"])),
        (f"{mode} size", _size(summary["quantized_size_bytes"])),
        ("verdict", summary["verdict"]),
        outcome,
    ]
    width = max(len(name) for name, _ in rows)
    rule = "-" * min(100, width + 3 + max(len(str(value)) for _, value in rows))
    lines = [f"quantgate summary, run {summary['run_id']}", rule]
    lines += [f"{name:<{width}} | {value}" for name, value in rows]
    return "\n".join([*lines, rule])


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


def format_why_not(result: dict[str, Any]) -> str:
    """The refusals of ``why_not`` as text."""
    lines = [f"pipeline run {result['run_id']} pushed nothing:"]
    for refusal in result["refused"]:
        pusher, pushed = refusal["pusher"], refusal["pushed_model"]
        lines.append(f"  {pusher['component_id']} (execution #{pusher['id']}): "
                     f"{pushed['properties'].get('reason') or 'not blessed'}")
        for blessing in refusal["blessings"]:
            lines.append(f"    blessing #{blessing['id']}: {_shown(blessing)}")
    return "\n".join(lines)
