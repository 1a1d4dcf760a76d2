"""Reading ML Metadata: what a pipeline run produced and where it came from.

Everything here walks events (``get_events_by_execution_ids`` and friends) instead of ``filter_query``, which later
MLMD releases removed.
"""

from __future__ import annotations

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

NODE_CONTEXT_TYPE = "node"


def open_sqlite_store(path: str) -> metadata_store.MetadataStore:
    """Opens an existing SQLite MLMD file (read/write); refuses a missing file rather than creating an empty store."""
    import os

    if not os.path.exists(path):
        raise FileNotFoundError(f"no ML Metadata store at {path}: pass the metadata.sqlite of a pipeline run")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return metadata_store.MetadataStore(config)


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


def output_artifacts(
    store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's output artifacts by output key."""
    events = [
        e for e in store.get_events_by_execution_ids([execution_id])
        if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
    ]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    by_key: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        by_key.setdefault(key, []).append(artifacts[event.artifact_id])
    return by_key
