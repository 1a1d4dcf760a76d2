"""The generic MLMD walk: executions by component, artifacts by event, producers, upstream lineage.

Everything here walks events (``get_events_by_execution_ids`` / ``get_events_by_artifact_ids`` /
``get_executions_by_id``) instead of ``filter_query``, which later MLMD releases removed. Nothing here knows
quantgate's components.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from quantgate.components.shared import properties
from quantgate.pipelines.lineage.store import LineageError

NODE_CONTEXT_TYPE = "node"
RUN_CONTEXT_TYPE = "pipeline_run"
_Execution = metadata_store_pb2.Execution
_Event = metadata_store_pb2.Event
FINISHED_STATES = (_Execution.COMPLETE, _Execution.CACHED)
OUTPUT_EVENTS = (_Event.OUTPUT, _Event.DECLARED_OUTPUT)
INPUT_EVENTS = (_Event.INPUT, _Event.DECLARED_INPUT)


def latest_complete_execution(
    store: metadata_store.MetadataStore, pipeline_name: str, component_id: str
) -> metadata_store_pb2.Execution | None:
    """The newest COMPLETE or CACHED execution of a component of a pipeline, or ``None``."""
    context = store.get_context_by_type_and_name(NODE_CONTEXT_TYPE, f"{pipeline_name}.{component_id}")
    if context is None:
        return None
    executions = [e for e in store.get_executions_by_context(context.id) if e.last_known_state in FINISHED_STATES]
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
    return _artifacts_by_key(store, execution_id, OUTPUT_EVENTS)


def input_artifacts(
    store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's input artifacts by input key."""
    return _artifacts_by_key(store, execution_id, INPUT_EVENTS)


def producer(store: metadata_store.MetadataStore, artifact_id: int) -> metadata_store_pb2.Execution | None:
    """The execution that produced an artifact, or ``None`` for an artifact nothing produced (an import).

    A cached execution also records an OUTPUT event to the artifact it reused, so the producer is the earliest
    COMPLETE execution among the artifact's OUTPUT events, not any of them.
    """
    ids = [e.execution_id for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in OUTPUT_EVENTS]
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
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")


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
    reason: str | None = None  # why a FAILED execution failed, when the runner recorded it


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


class Reader:
    """Caches type names and contexts while one question is answered."""

    def __init__(self, store: metadata_store.MetadataStore) -> None:
        self.store = store
        self._artifact_types = {t.id: t.name for t in store.get_artifact_types()}
        self._context_types = {t.id: t.name for t in store.get_context_types()}

    def artifact_type(self, artifact: metadata_store_pb2.Artifact) -> str:
        name = artifact.type or self._artifact_types.get(artifact.type_id, str(artifact.type_id))
        return properties.LEGACY_TYPE_NAMES.get(name, name)

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
        reason = execution.custom_properties.get(properties.FAILURE_REASON)
        return ExecutionInfo(execution.id, component, execution.type,
                             _Execution.State.Name(execution.last_known_state), run_id,
                             _iso(execution.create_time_since_epoch), _iso(execution.last_update_time_since_epoch),
                             reason.string_value if reason is not None else None)

    def artifact(self, artifact_id: int) -> metadata_store_pb2.Artifact:
        found = self.store.get_artifacts_by_id([artifact_id])
        if not found:
            raise LineageError(f"no artifact with id {artifact_id} in this ML Metadata store")
        return found[0]


def walk_upstream(store: metadata_store.MetadataStore, artifact_id: int) -> list[LineageNode]:
    """Every artifact the given one was derived from, itself first, breadth first, each once."""
    reader = Reader(store)
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


def unfinished_executions(store: metadata_store.MetadataStore, run_name: str) -> list[ExecutionInfo]:
    """The executions of a pipeline run that neither completed nor were cached (FAILED, and RUNNING or NEW ones
    that a killed process or a full disk left behind), oldest first."""
    run = store.get_context_by_type_and_name(RUN_CONTEXT_TYPE, run_name)
    if run is None:
        return []
    reader = Reader(store)
    executions = [e for e in store.get_executions_by_context(run.id) if e.last_known_state not in FINISHED_STATES]
    return [reader.execution_info(e) for e in sorted(executions, key=lambda e: (e.create_time_since_epoch, e.id))]
