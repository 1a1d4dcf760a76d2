"""Lineage queries (pipelines/lineage/): event walks on hand-built MLMD stores, then on the demo run (SQLite)
and on a second, small run with MLMD on a real MariaDB server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
from tfx import v1 as tfx

from quantgate.pipelines import lineage
from quantgate.pipelines.local_runner import LocalRunConfig, LocalRunPaths, record_failure, run_local


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
                  outputs: dict[str, int], type_name: str | None = None) -> int:
        type_id = self.store.put_execution_type(pb.ExecutionType(name=type_name)) if type_name else self.execution_type
        execution = pb.Execution(type_id=type_id, last_known_state=state)
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


def _pushed_graph(graph: Graph, pushed: int, report_path: str | None = None) -> dict[str, int]:
    ids = {name: graph.artifact(kind) for name, kind in (
        ("examples", "Examples"), ("trainer", "Model"), ("representative", "quantgate.RepresentativeDataset"))}
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
    evaluator_outputs = {"blessing": ids["blessing"]}
    if report_path is not None:
        ids["evaluation"] = evaluator_outputs["evaluation"] = graph.artifact(
            "quantgate.QuantizationEvaluation", report_path=report_path)
    graph.execution("QuantizationEvaluator", "r", pb.Execution.COMPLETE,
                    {"model": ids["trainer"], "quantized_model": ids["quantized"], "examples": ids["examples"]},
                    evaluator_outputs)
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


def _transform_pushed_graph(graph: Graph) -> dict[str, int]:
    """A pipeline with Transform: the Trainer reads transformed examples, the Quantizer the transform graph too."""
    ids = {name: graph.artifact(kind) for name, kind in (
        ("examples", "Examples"), ("schema", "Schema"), ("graph", "TransformGraph"), ("transformed", "Examples"),
        ("trainer", "Model"), ("representative", "quantgate.RepresentativeDataset"), ("blessing", "ModelBlessing"))}
    ids["quantized"] = graph.artifact("Model", quantization_mode="int8", transform_graph_id=ids["graph"])
    ids["pushed"] = graph.artifact("PushedModel", pushed=1, pushed_destination="/srv/1")
    graph.execution("CsvExampleGen", "r", pb.Execution.COMPLETE, {}, {"examples": ids["examples"]})
    ids["transform"] = graph.execution(
        "Transform", "r", pb.Execution.COMPLETE, {"examples": ids["examples"], "schema": ids["schema"]},
        {"transform_graph": ids["graph"], "transformed_examples": ids["transformed"]})
    graph.execution("Trainer", "r", pb.Execution.COMPLETE,
                    {"examples": ids["transformed"], "transform_graph": ids["graph"]}, {"model": ids["trainer"]})
    graph.execution("RepresentativeDatasetGen", "r", pb.Execution.COMPLETE, {"examples": ids["examples"]},
                    {"representative_dataset": ids["representative"]})
    graph.execution("Quantizer", "r", pb.Execution.COMPLETE,
                    {"model": ids["trainer"], "representative_dataset": ids["representative"],
                     "transform_graph": ids["graph"]}, {"quantized_model": ids["quantized"]})
    graph.execution("QuantizedModelPusher", "r", pb.Execution.COMPLETE,
                    {"model": ids["quantized"], "model_blessing": ids["blessing"], "transform_graph": ids["graph"]},
                    {"pushed_model": ids["pushed"]})
    return ids


def test_pushed_chain_includes_the_transform_graph_and_its_execution(graph) -> None:
    ids = _transform_pushed_graph(graph)
    chain = lineage.pushed_chain(graph.store, ids["pushed"])["chain"]
    roles = [c["role"] for c in chain]
    assert roles[:5] == ["pushed model", "blessing", "quantized model", "representative dataset", "transform graph"]
    assert roles[5] == "trainer model" and roles[-1] == "examples"
    transform = chain[4]
    assert transform["artifact"]["id"] == ids["graph"] and transform["artifact"]["type"] == "TransformGraph"
    assert transform["producer"]["id"] == ids["transform"] and transform["producer"]["component_id"] == "Transform"
    assert transform["inputs"] == {"examples": [ids["examples"]], "schema": [ids["schema"]]}
    text = lineage.format_chain({"chain": chain})
    assert f"transform graph         #{ids['graph']} TransformGraph\n" in text
    assert f"by Transform (execution #{ids['transform']}, COMPLETE, run r, " in text
    assert f"quantization_mode=int8 transform_graph_id={ids['graph']}" in text


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


def test_why_not_explains_a_run_killed_before_the_gate(graph) -> None:
    ids = _pushed_graph(graph, pushed=1)
    # A second run: the Trainer failed, then a retry was killed (or the disk filled up) and stayed RUNNING;
    # no pusher ever ran.
    graph.execution("CsvExampleGen", "r2", pb.Execution.CACHED, {}, {"examples": ids["examples"]})
    failed = graph.execution("Trainer", "r2", pb.Execution.FAILED, {"examples": ids["examples"]}, {})
    running = graph.execution("Trainer", "r2", pb.Execution.RUNNING, {"examples": ids["examples"]}, {})
    new = graph.execution("Quantizer", "r2", pb.Execution.NEW, {"model": ids["trainer"]}, {})
    result = lineage.why_not(graph.store)  # the newest run, although it has no pusher
    assert result["run_id"] == "r2" and result["refused"] == []
    assert [(e["id"], e["component_id"], e["state"]) for e in result["unfinished"]] == [
        (failed, "Trainer", "FAILED"), (running, "Trainer", "RUNNING"), (new, "Quantizer", "NEW")]
    text = lineage.format_why_not(result)
    started = result["unfinished"][1]["started"]
    assert started[:4].isdigit() and started.endswith("+00:00")  # ISO 8601, UTC
    assert f"Trainer (execution #{running}): did not finish (started {started})" in text
    assert f"Trainer (execution #{failed}): failed (started " in text
    assert f"Quantizer (execution #{new}): did not finish (started " in text
    assert "no pusher ran: the run stopped before the gate" in text
    assert json.loads(json.dumps(result)) == result  # --json prints it
    with pytest.raises(lineage.LineageError, match="did push"):  # the earlier, finished run is still asked by id
        lineage.why_not(graph.store, "r")


def test_why_not_lists_unfinished_executions_beside_a_refusal(graph) -> None:
    ids = _pushed_graph(graph, pushed=0)
    stuck = graph.execution("Evaluator", "r", pb.Execution.RUNNING, {"model": ids["trainer"]}, {})
    result = lineage.why_not(graph.store, "r")
    assert len(result["refused"]) == 1 and [e["id"] for e in result["unfinished"]] == [stuck]
    text = lineage.format_why_not(result)
    assert "no pusher ran" not in text and f"Evaluator (execution #{stuck}): did not finish (started " in text


def test_why_not_says_why_a_pusher_failed(graph, tmp_path) -> None:
    ids = _pushed_graph(graph, pushed=1)
    failed = graph.execution("QuantizedModelPusher", "r2", pb.Execution.FAILED, {"model": ids["trainer"]}, {},
                             type_name="quantgate.components.quantized_model_pusher.component.QuantizedModelPusher")
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "metadata.sqlite")
    record_failure(config, "pipe", 0, ValueError("QuantizedModelPusher: input 'model' (artifact 9) is not a\n"
                                                   "loadable TFLite model"))
    text = lineage.format_why_not(lineage.why_not(graph.store, "r2"))
    assert "no pusher ran" not in text
    assert (f"QuantizedModelPusher (execution #{failed}): failed (started ") in text
    assert text.endswith("): ValueError: QuantizedModelPusher: input 'model' (artifact 9) is not a loadable TFLite "
                         "model")
    # Recorded once: a later failure of another execution does not overwrite it.
    record_failure(config, "pipe", 0, RuntimeError("later"))
    assert "later" not in lineage.format_why_not(lineage.why_not(graph.store, "r2"))


def test_run_summary_names_the_report_and_what_did_not_finish(graph) -> None:
    ids = _pushed_graph(graph, pushed=0, report_path="/p/QuantizationEvaluator/evaluation/7/report.html")
    stuck = graph.execution("Evaluator", "r", pb.Execution.RUNNING, {"model": ids["trainer"]}, {})
    summary = lineage.run_summary(graph.store, "pipe", "QuantizedModelPusher")
    assert summary["report_path"] == "/p/QuantizationEvaluator/evaluation/7/report.html"
    assert [e["id"] for e in summary["unfinished"]] == [stuck]
    table = lineage.format_summary(summary)
    assert "\nreport " in table and table.count("/p/QuantizationEvaluator/evaluation/7/report.html") == 1
    assert f"did not finish | Evaluator (execution #{stuck}, started " in table


def test_no_run_at_all(tmp_path) -> None:
    graph = Graph(_new_store(str(tmp_path / "metadata.sqlite")))
    graph.artifact("Examples")  # imported, never run
    with pytest.raises(lineage.LineageError, match="no pipeline run in this ML Metadata store"):
        lineage.why_not(graph.store)


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


# --- the demo run (SQLite): a push, and the chain behind it -------------------------------------------------

CHAIN_PRODUCERS = [
    ("pushed model", "QuantizedModelPusher"),
    ("blessing", "QuantizationEvaluator"),
    ("float blessing", "Evaluator"),
    ("quantized model", "Quantizer"),
    ("representative dataset", "RepresentativeDatasetGen"),
    ("trainer model", "Trainer"),
    ("examples", "CsvExampleGen"),
]


def test_demo_run_chain_from_the_latest_push(demo_run) -> None:
    result = lineage.pushed_chain(demo_run.store, "latest")
    chain = {entry["role"]: entry for entry in result["chain"]}
    assert [(e["role"], e["producer"]["component_id"]) for e in result["chain"]] == CHAIN_PRODUCERS
    assert chain["pushed model"]["artifact"]["id"] == demo_run.output("QuantizedModelPusher", "pushed_model").id
    for role, component, key in (("blessing", "QuantizationEvaluator", "blessing"),
                                 ("quantized model", "Quantizer", "quantized_model"),
                                 ("representative dataset", "RepresentativeDatasetGen", "representative_dataset"),
                                 ("trainer model", "Trainer", "model"), ("examples", "CsvExampleGen", "examples")):
        assert chain[role]["artifact"]["id"] == demo_run.output(component, key).id, role
    run_ids = {e["producer"]["run_id"] for e in result["chain"]}
    assert len(run_ids) == 1 and None not in run_ids  # one run, every step COMPLETE in it
    assert {e["producer"]["state"] for e in result["chain"]} == {"COMPLETE"}
    blessing = chain["blessing"]["artifact"]["properties"]
    assert blessing["blessed"] == 1 and blessing["delta"] <= blessing["threshold"]
    quantized = chain["quantized model"]["artifact"]["properties"]
    assert quantized["quantization_mode"] == "int8" and len(quantized["sha256"]) == 64 and quantized["size_bytes"] > 0
    representative = chain["representative dataset"]["artifact"]["properties"]
    assert (representative["seed"], representative["split"], representative["strategy"]) == (0, "train", "stratified")
    assert representative["num_examples"] > 0
    text = lineage.format_chain(result)
    assert [line.split(" (")[0].split()[-1] for line in text.splitlines() if line.lstrip().startswith("by ")] == [
        component for _, component in CHAIN_PRODUCERS]


def test_demo_run_why_not_says_it_pushed(demo_run) -> None:
    with pytest.raises(lineage.LineageError, match="did push"):
        lineage.why_not(demo_run.store)


def test_demo_run_summary(demo_run) -> None:
    summary = lineage.run_summary(demo_run.store, demo_run.paths.pipeline_name, "QuantizedModelPusher")
    assert summary["pushed"] and summary["verdict"] == "blessed"
    assert summary["metric"] == "accuracy" and 0.5 < summary["float_metric"] <= 1.0
    assert summary["delta"] == pytest.approx(summary["float_metric"] - summary["quantized_metric"])
    assert summary["quantized_size_bytes"] > 0 and summary["float_size_bytes"] > 0
    table = lineage.format_summary(summary)
    for label in ("float accuracy", "int8 accuracy", "delta", "threshold", "float size", "int8 size", "verdict",
                  "pushed to"):
        assert f"\n{label}" in table
    assert summary["pushed_destination"] in table
    candidates = {c["quantization_mode"]: c for c in summary["candidates"]}
    assert sorted(candidates) == ["dynamic_range", "float16", "int8"]
    assert [c["id"] for c in summary["candidates"] if c["chosen"]] == [
        demo_run.output("QuantizationEvaluator", "blessing").custom_properties["current_model_id"].int_value]
    assert f"int8 {candidates['int8']['size_bytes']:,} bytes" in table.split("\ncandidates")[1]


# --- MLMD on a real MariaDB server: a second, small run whose gate refuses the push ------------------------

# The smallest run that still runs every component. A negative max delta makes the QuantizationEvaluator refuse
# (the quantized model would have to *improve* by 1.0), so this store answers --why-not, while the SQLite demo
# run answers --pushed.
MYSQL_RUN_KWARGS = {"train_steps": 20, "eval_steps": 5, "calibration_num_examples": 30,
                    "gate.max_delta": -1.0, "quantize.candidate_modes": []}


@pytest.fixture(scope="module")
def mysql_run(mariadb, tmp_path_factory) -> tuple[LocalRunPaths, lineage.MySQLConfig, metadata_store.MetadataStore]:
    paths = LocalRunPaths(home=str(tmp_path_factory.mktemp("mysql_run")))
    connection = tfx.orchestration.metadata.mysql_metadata_connection_config(
        host=mariadb.host, port=mariadb.port, database=mariadb.database, username=mariadb.user, password="")
    run_local(LocalRunConfig(paths=paths, pipeline="penguin", pipeline_kwargs=MYSQL_RUN_KWARGS,
                             metadata_connection_config=connection))
    mysql = lineage.MySQLConfig(host=mariadb.host, port=mariadb.port, database=mariadb.database, user=mariadb.user)
    return paths, mysql, lineage.open_mysql_store(mysql)


def test_mysql_run_pushed_nothing_and_why_not_says_why(mysql_run) -> None:
    paths, _, store = mysql_run
    assert not os.path.exists(paths.serving_model_dir) or os.listdir(paths.serving_model_dir) == []
    result = lineage.why_not(store)
    (refused,) = result["refused"]
    assert refused["pusher"]["component_id"] == "QuantizedModelPusher"
    assert refused["pushed_model"]["properties"]["pushed"] == 0
    reasons = [b["properties"].get("reason") for b in refused["blessings"]]
    assert any(r and r.startswith("not blessed: ") and "> max -1" in r for r in reasons), reasons
    assert "model_blessing (artifact" in refused["pushed_model"]["properties"]["reason"]
    assert lineage.why_not(store, result["run_id"]) == result


def test_mysql_run_chain_of_the_refused_push(mysql_run) -> None:
    _, _, store = mysql_run
    (refused,) = lineage.why_not(store)["refused"]
    chain = lineage.pushed_chain(store, refused["pushed_model"]["id"])["chain"]
    assert [(e["role"], e["producer"]["component_id"]) for e in chain] == CHAIN_PRODUCERS
    with pytest.raises(lineage.LineageError, match=r"nothing was pushed in this store \(1 push attempts refused\)"):
        lineage.pushed_chain(store, "latest")


def test_mysql_lineage_cli(mysql_run) -> None:
    _, mysql, _ = mysql_run
    connection = ["--mysql-host", mysql.host, "--mysql-port", str(mysql.port), "--mysql-database", mysql.database,
                  "--mysql-user", mysql.user]
    why = subprocess.run([sys.executable, "-m", "quantgate", "lineage", *connection, "--why-not", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert why.returncode == 0, why.stderr
    assert json.loads(why.stdout)["refused"][0]["pushed_model"]["properties"]["pushed"] == 0
    latest = subprocess.run([sys.executable, "-m", "quantgate", "lineage", *connection],
                            capture_output=True, text=True, timeout=120)
    assert latest.returncode == 1 and latest.stderr.startswith("error: nothing was pushed")
    assert "Traceback" not in latest.stderr
