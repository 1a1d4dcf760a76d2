"""Reading ML Metadata: what a pipeline run produced and where it came from.

``store`` opens a store, ``events`` is the generic MLMD walk, ``questions`` asks quantgate's questions and
``render`` turns the answers into text. Only ``ml_metadata`` is imported (no TensorFlow): the lineage CLI answers in
about a second.
"""

from quantgate.pipelines.lineage.events import (
    NODE_CONTEXT_TYPE,
    RUN_CONTEXT_TYPE,
    ArtifactInfo,
    ExecutionInfo,
    LineageNode,
    input_artifacts,
    latest_complete_execution,
    output_artifacts,
    plain,
    producer,
    walk_upstream,
)
from quantgate.pipelines.lineage.questions import (
    CHAIN,
    PUSHED_MODEL_TYPE,
    latest_pushed_model,
    pushed_chain,
    run_summary,
    why_not,
)
from quantgate.pipelines.lineage.render import SHOWN_PROPERTIES, format_chain, format_summary, format_why_not
from quantgate.pipelines.lineage.store import LineageError, MySQLConfig, open_mysql_store, open_sqlite_store

__all__ = [
    "CHAIN", "NODE_CONTEXT_TYPE", "PUSHED_MODEL_TYPE", "RUN_CONTEXT_TYPE", "SHOWN_PROPERTIES", "ArtifactInfo", "ExecutionInfo", "LineageError",
    "LineageNode", "MySQLConfig", "format_chain", "format_summary", "format_why_not", "input_artifacts",
    "latest_complete_execution", "latest_pushed_model", "open_mysql_store", "open_sqlite_store",
    "output_artifacts", "plain", "producer", "pushed_chain", "run_summary", "walk_upstream", "why_not",
]
