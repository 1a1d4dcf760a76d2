"""Lineage queries (pipelines/lineage.py): event walks on hand-built MLMD stores, then on the demo run (SQLite)
and on a second, small run with MLMD on a real MariaDB server."""

from __future__ import annotations

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from pipelines import lineage


def _new_store(path: str) -> metadata_store.MetadataStore:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


class Graph:
    """A tiny hand-built MLMD graph: artifacts, executions (with node and run contexts) and events."""

    def __init__(self, store: metadata_store.MetadataStore) -> None:
        self.store = store
        self.execution_type = store.put_execution_type(pb.ExecutionType(name="Step"))
        self.contexts = {name: store.put_context_type(pb.ContextType(name=name))
                         for name in (lineage.NODE_CONTEXT_TYPE, lineage.RUN_CONTEXT_TYPE)}

    def artifact(self, type_name: str, **custom: int | str) -> int:
        type_id = self.store.put_artifact_type(pb.ArtifactType(name=type_name))
        artifact = pb.Artifact(type_id=type_id, uri=f"/a/{type_name}", state=pb.Artifact.LIVE)
        for key, value in custom.items():
            field = "int_value" if isinstance(value, int) else "string_value"
            setattr(artifact.custom_properties[key], field, value)
        return self.store.put_artifacts([artifact])[0]

    def execution(self, component: str, run: str, state: int, inputs: dict[str, int],
                  outputs: dict[str, int]) -> int:
        execution = pb.Execution(type_id=self.execution_type, last_known_state=state)
        events = [(pb.Artifact(id=a), pb.Event(type=pb.Event.INPUT, path=_path(k))) for k, a in inputs.items()]
        events += [(pb.Artifact(id=a), pb.Event(type=pb.Event.OUTPUT, path=_path(k))) for k, a in outputs.items()]
        contexts = [self._context(lineage.NODE_CONTEXT_TYPE, f"pipe.{component}"),
                    self._context(lineage.RUN_CONTEXT_TYPE, run)]
        # put_execution writes artifacts back; pass the stored ones so nothing is overwritten.
        stored = {a.id: a for a in self.store.get_artifacts_by_id([a.id for a, _ in events])}
        execution_id, _, _ = self.store.put_execution(
            execution, [(stored[a.id], e) for a, e in events], contexts, reuse_context_if_already_exist=True)
        return execution_id

    def _context(self, kind: str, name: str) -> pb.Context:
        existing = self.store.get_context_by_type_and_name(kind, name)
        return existing or pb.Context(type_id=self.contexts[kind], name=name)


def _path(key: str) -> pb.Event.Path:
    return pb.Event.Path(steps=[pb.Event.Path.Step(key=key), pb.Event.Path.Step(index=0)])


@pytest.fixture
def graph(tmp_path) -> Graph:
    return Graph(_new_store(str(tmp_path / "metadata.sqlite")))


def test_producer_is_the_complete_execution_not_a_later_cached_one(graph) -> None:
    examples = graph.artifact("Examples")
    model = graph.artifact("Model")
    trained = graph.execution("Trainer", "run-1", pb.Execution.COMPLETE, {"examples": examples}, {"model": model})
    # A second run reuses the model from the cache: its CACHED execution also has an OUTPUT event to it.
    cached = graph.execution("Trainer", "run-2", pb.Execution.CACHED, {"examples": examples}, {"model": model})
    assert cached > trained
    assert lineage.producer(graph.store, model).id == trained
    assert lineage.producer(graph.store, examples) is None  # imported, nothing produced it


def _pushed_graph(graph: Graph, pushed: int) -> dict[str, int]:
    ids = {name: graph.artifact(kind) for name, kind in (
        ("examples", "Examples"), ("trainer", "Model"), ("representative", "components.RepresentativeDataset"))}
    ids["quantized"] = graph.artifact("Model", quantization_mode="int8", sha256="abc")
    ids["blessing"] = graph.artifact("ModelBlessing", blessed=pushed, reason="not blessed: delta 0.2 > max 0.01")
    ids["pushed"] = graph.artifact("PushedModel", pushed=pushed, pushed_destination="/srv/1" if pushed else "")
    graph.execution("CsvExampleGen", "r", pb.Execution.COMPLETE, {}, {"examples": ids["examples"]})
    graph.execution("Trainer", "r", pb.Execution.COMPLETE, {"examples": ids["examples"]}, {"model": ids["trainer"]})
    graph.execution("RepresentativeDatasetGen", "r", pb.Execution.COMPLETE, {"examples": ids["examples"]},
                    {"representative_dataset": ids["representative"]})
    graph.execution("Quantizer", "r", pb.Execution.COMPLETE,
                    {"model": ids["trainer"], "representative_dataset": ids["representative"]},
                    {"quantized_model": ids["quantized"]})
    graph.execution("QuantizationEvaluator", "r", pb.Execution.COMPLETE,
                    {"model": ids["trainer"], "quantized_model": ids["quantized"], "examples": ids["examples"]},
                    {"blessing": ids["blessing"]})
    graph.execution("QuantizedModelPusher", "r", pb.Execution.COMPLETE,
                    {"model": ids["quantized"], "model_blessing": ids["blessing"]}, {"pushed_model": ids["pushed"]})
    return ids


def test_walk_upstream_visits_every_ancestor_once(graph) -> None:
    ids = _pushed_graph(graph, pushed=1)
    nodes = lineage.walk_upstream(graph.store, ids["pushed"])
    assert [n.artifact.id for n in nodes][0] == ids["pushed"]
    assert sorted(n.artifact.id for n in nodes) == sorted(ids.values())
    by_id = {n.artifact.id: n for n in nodes}
    assert by_id[ids["quantized"]].producer.component_id == "Quantizer"
    assert by_id[ids["quantized"]].inputs == {"model": [ids["trainer"]],
                                             "representative_dataset": [ids["representative"]]}
    assert by_id[ids["examples"]].producer.run_id == "r"


def test_pushed_chain_follows_the_input_keys(graph) -> None:
    ids = _pushed_graph(graph, pushed=1)
    chain = lineage.pushed_chain(graph.store, "latest")["chain"]
    assert [(c["role"], c["artifact"]["id"]) for c in chain] == [
        ("pushed model", ids["pushed"]), ("blessing", ids["blessing"]), ("quantized model", ids["quantized"]),
        ("representative dataset", ids["representative"]), ("trainer model", ids["trainer"]),
        ("examples", ids["examples"])]
    assert chain[2]["artifact"]["properties"] == {"quantization_mode": "int8", "sha256": "abc"}
    text = lineage.format_chain({"chain": chain})
    assert f"quantized model         #{ids['quantized']} Model  quantization_mode=int8 sha256=abc" in text
    assert "by QuantizedModelPusher (execution #" in text


def test_why_not_quotes_the_blessing(graph) -> None:
    ids = _pushed_graph(graph, pushed=0)
    result = lineage.why_not(graph.store)
    assert result["run_id"] == "r"
    (refused,) = result["refused"]
    assert refused["pushed_model"]["id"] == ids["pushed"]
    assert [b["properties"]["reason"] for b in refused["blessings"]] == ["not blessed: delta 0.2 > max 0.01"]
    assert f"blessing #{ids['blessing']}: blessed=0 reason=not blessed: delta 0.2 > max 0.01" in (
        lineage.format_why_not(result))
    with pytest.raises(lineage.LineageError, match=r"nothing was pushed in this store \(1 push attempts refused\)"):
        lineage.pushed_chain(graph.store, "latest")


def test_why_not_refuses_a_run_that_pushed(graph) -> None:
    ids = _pushed_graph(graph, pushed=1)
    with pytest.raises(lineage.LineageError, match=f"did push \\(PushedModel {ids['pushed']} at /srv/1\\)"):
        lineage.why_not(graph.store, "r")


@pytest.mark.parametrize("question, message", [
    (lambda s: lineage.pushed_chain(s, "latest"), "the ML Metadata store is empty"),
    (lambda s: lineage.pushed_chain(s, 5), "the ML Metadata store is empty"),
    (lambda s: lineage.why_not(s), "the ML Metadata store is empty"),
])
def test_empty_store(tmp_path, question, message: str) -> None:
    with pytest.raises(lineage.LineageError, match=message):
        question(_new_store(str(tmp_path / "empty.sqlite")))


def test_unknown_id_and_wrong_type(graph) -> None:
    ids = _pushed_graph(graph, pushed=1)
    with pytest.raises(lineage.LineageError, match="no artifact with id 999"):
        lineage.pushed_chain(graph.store, 999)
    with pytest.raises(lineage.LineageError, match=f"artifact {ids['blessing']} is a ModelBlessing, not a PushedModel"):
        lineage.pushed_chain(graph.store, ids["blessing"])


def test_unreachable_mysql_is_a_lineage_error() -> None:
    unreachable = lineage.MySQLConfig(host="127.0.0.1", port=1, database="mlmd", user="nobody")
    with pytest.raises(lineage.LineageError, match=r"cannot reach MLMD on MySQL nobody@127.0.0.1:1/mlmd"):
        lineage.open_mysql_store(unreachable)
