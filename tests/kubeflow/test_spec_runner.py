"""kubeflow/spec_runner.py: ExecutorInput building on hand-written specs (pure), our executors run as the container
would on the demo run's artifacts, and the whole compiled job run task by task."""

from __future__ import annotations

import json
import os

import pytest
import runner
import spec_runner
from tfx.dsl.io import fileio

EXAMPLES_TYPE = {"instanceSchema": "title: tfx.Examples\ntype: object\n"}
MODEL_TYPE = {"instanceSchema": "title: tfx.Model\ntype: object\n"}


def _container(command: list[str], args: list[str]) -> dict:
    return {"container": {"image": "img", "command": command, "args": args}}


def _hand_written_job(schema_version: str = "2.1.0") -> dict:
    """Producer -> consumer, plus an importer and a resolver feeding the consumer."""
    constant = ({"runtimeValue": {"constant": 5}} if schema_version >= "2.1.0"
                else {"runtimeValue": {"constantValue": {"intValue": "5"}}})
    return {
        "runtimeConfig": {"parameterValues": {"threshold": 0.5}},
        "pipelineSpec": {
            "schemaVersion": schema_version,
            "pipelineInfo": {"name": "hand-written"},
            "components": {
                "Producer": {"executorLabel": "Producer_executor",
                             "outputDefinitions": {"artifacts": {"examples": {"artifactType": EXAMPLES_TYPE}}}},
                "Importer": {"executorLabel": "Importer_executor",
                             "outputDefinitions": {"artifacts": {"result": {"artifactType": MODEL_TYPE}}}},
                "Resolver": {"executorLabel": "Resolver_executor",
                             "outputDefinitions": {"artifacts": {"model": {"artifactType": MODEL_TYPE}}}},
                "Consumer": {"executorLabel": "Consumer_executor",
                             "inputDefinitions": {"artifacts": {"examples": {"artifactType": EXAMPLES_TYPE},
                                                                "model": {"artifactType": MODEL_TYPE},
                                                                "baseline": {"artifactType": MODEL_TYPE}}},
                             "outputDefinitions": {"artifacts": {"model": {"artifactType": MODEL_TYPE}}}},
            },
            "deploymentSpec": {"executors": {
                "Producer_executor": _container(["python", "-c", "import sys; sys.exit(3)"], ["{{$}}"]),
                "Importer_executor": {"importer": {"artifactUri": {"constant": "/models/seed"},
                                                   "typeSchema": MODEL_TYPE, "metadata": {"origin": "seed"}}},
                "Resolver_executor": {"resolver": {"outputArtifactQueries": {}}},
                "Consumer_executor": _container(["python", "-m", "x"], ["--executor_class_path", "a.B", "{{$}}"]),
            }},
            "root": {"dag": {"tasks": {
                "Consumer": {"componentRef": {"name": "Consumer"}, "dependentTasks": ["Producer"],
                             "inputs": {
                                 "artifacts": {
                                     "examples": {"taskOutputArtifact": {"producerTask": "Producer",
                                                                         "outputArtifactKey": "examples"}},
                                     "model": {"taskOutputArtifact": {"producerTask": "Importer",
                                                                      "outputArtifactKey": "result"}},
                                     "baseline": {"taskOutputArtifact": {"producerTask": "Resolver",
                                                                         "outputArtifactKey": "model"}}},
                                 "parameters": {"steps": constant,
                                                "threshold": {"componentInputParameter": "threshold"}}}},
                "Producer": {"componentRef": {"name": "Producer"}},
                "Importer": {"componentRef": {"name": "Importer"}},
                "Resolver": {"componentRef": {"name": "Resolver"}},
            }}},
        },
    }


# --- pure: the spec and the ExecutorInput ----------------------------------------------------------------------

def test_order_puts_producers_first_and_classifies_tasks() -> None:
    job = spec_runner.PipelineJob(_hand_written_job())
    order = job.order()
    assert order[-1] == "Consumer" and set(order) == {"Producer", "Importer", "Resolver", "Consumer"}
    assert {name: task.kind for name, task in job.tasks.items()} == {
        "Producer": "container", "Importer": "importer", "Resolver": "resolver", "Consumer": "container"}
    assert job.tasks["Consumer"].executor_class_path == "a.B"
    assert job.tasks["Producer"].executor_class_path is None


@pytest.mark.parametrize(("schema_version", "field"), [("2.1.0", "parameterValues"), ("2.0.0", "parameters")])
def test_executor_input_carries_parameters_inputs_and_outputs(schema_version: str, field: str) -> None:
    job = spec_runner.PipelineJob(_hand_written_job(schema_version))
    upstream = {("Producer", "examples"): [{"name": "n1", "uri": "/up/examples", "metadata": {"span": 0.0}}],
                ("Importer", "result"): [{"name": "n2", "uri": "/models/seed", "metadata": {}}]}
    executor_input = spec_runner.build_executor_input(
        job, job.tasks["Consumer"], lambda task, key: upstream.get((task, key), []), "/root/j/Consumer", "j")
    inputs = executor_input["inputs"]
    assert set(inputs["artifacts"]) == {"examples", "model"}  # the unresolved baseline is left out
    (examples,) = inputs["artifacts"]["examples"]["artifacts"]
    assert examples == {"name": "n1", "uri": "/up/examples", "metadata": {"span": 0.0}, "type": EXAMPLES_TYPE}
    if field == "parameterValues":
        assert inputs[field] == {"steps": 5, "threshold": 0.5}
    else:
        assert inputs[field]["steps"] == {"intValue": "5"}
    (output,) = executor_input["outputs"]["artifacts"]["model"]["artifacts"]
    assert output["uri"] == "/root/j/Consumer/model" and output["type"] == MODEL_TYPE
    assert output["name"] == "local/j/Consumer/model"
    assert executor_input["outputs"]["outputFile"] == "/root/j/Consumer/executor_output.json"


@pytest.mark.parametrize(("source", "value"), [({"runtimeValue": {"constant": "x"}}, "x"),
                                               ({"runtimeValue": {"constantValue": {"intValue": "7"}}}, 7),
                                               ({"runtimeValue": {"constantValue": {"doubleValue": 0.5}}}, 0.5)])
def test_constant_value_unwraps_both_schemas(source: dict, value: object) -> None:
    assert spec_runner.constant_value(source) == value


def test_a_missing_pipeline_parameter_is_named() -> None:
    raw = _hand_written_job()
    raw["runtimeConfig"] = {}
    job = spec_runner.PipelineJob(raw)
    with pytest.raises(spec_runner.SpecRunError, match="'threshold' has no value in runtimeConfig"):
        spec_runner.build_executor_input(job, job.tasks["Consumer"], lambda task, key: [], "/r", "j")


def test_a_failing_container_names_the_task_and_its_log(tmp_path) -> None:
    raw = _hand_written_job()
    raw["pipelineSpec"]["root"]["dag"]["tasks"] = {"Producer": {"componentRef": {"name": "Producer"}}}
    with pytest.raises(spec_runner.SpecRunError, match=r"task Producer: .* exited with 3") as error:
        spec_runner.run_pipeline_job(spec_runner.PipelineJob(raw), str(tmp_path), job_id="j")
    assert os.path.join(str(tmp_path), "j", "Producer", spec_runner.LOG_FILENAME) in str(error.value)


def test_importers_resolve_from_the_spec_and_resolvers_say_why_they_are_empty(tmp_path) -> None:
    raw = _hand_written_job()
    tasks = raw["pipelineSpec"]["root"]["dag"]["tasks"]
    raw["pipelineSpec"]["root"]["dag"]["tasks"] = {k: tasks[k] for k in ("Importer", "Resolver")}
    results = spec_runner.run_pipeline_job(spec_runner.PipelineJob(raw), str(tmp_path), job_id="j")
    (imported,) = results["Importer"].outputs["result"]
    assert imported["uri"] == "/models/seed" and imported["metadata"] == {"origin": "seed"}
    assert results["Resolver"].outputs == {}
    assert "ML Metadata" in results["Resolver"].skipped_reason


def test_a_job_with_relative_local_paths_is_refused_with_the_fix(tmp_path) -> None:
    raw = _hand_written_job()
    raw["runtimeConfig"]["gcsOutputDirectory"] = "rel/root"
    consumer = raw["pipelineSpec"]["root"]["dag"]["tasks"]["Consumer"]["inputs"]["parameters"]
    consumer["input_base"] = {"runtimeValue": {"constant": "out/demo/data"}}
    consumer["push_destination"] = {"runtimeValue": {"constant": json.dumps(
        {"filesystem": {"base_directory": "gs://bucket/serving"}})}}
    job = spec_runner.PipelineJob(raw)
    assert spec_runner.job_locations(job) == {
        "runtimeConfig.gcsOutputDirectory": "rel/root", "Consumer.input_base": "out/demo/data",
        "Consumer.push_destination.filesystem.base_directory": "gs://bucket/serving"}
    assert spec_runner.relative_locations(job) == {"runtimeConfig.gcsOutputDirectory": "rel/root",
                                                   "Consumer.input_base": "out/demo/data"}
    with pytest.raises(spec_runner.SpecRunError, match=r"Consumer.input_base = 'out/demo/data'.*recompile with "
                                                       r"kubeflow/runner.py"):
        spec_runner.run_pipeline_job(job, str(tmp_path), job_id="j")


def test_a_relative_pipeline_root_is_made_absolute(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _hand_written_job()
    raw["pipelineSpec"]["root"]["dag"]["tasks"] = {"Producer": {"componentRef": {"name": "Producer"}}}
    monkeypatch.chdir(tmp_path)
    with pytest.raises(spec_runner.SpecRunError) as error:  # the Producer exits with 3, after its folder is made
        spec_runner.run_pipeline_job(spec_runner.PipelineJob(raw), "rel/root", job_id="j")
    assert os.path.join(os.getcwd(), "rel", "root", "j", "Producer", spec_runner.LOG_FILENAME) in str(error.value)


# --- executors run as the container would, on the demo run's artifacts -------------------------------------------

def _our_tasks() -> list[str]:
    """Our components in the pipeline as it stands (collected at import: the list grows as components land)."""
    pipeline = runner.build_pipeline(runner.KubeflowOptions())
    return [c.id for c in pipeline.components if c.executor_spec.executor_class.__module__.startswith("components.")]


# Ours only: the stock executors run in the end-to-end test below (each container costs a fresh TensorFlow import). Before any of ours is in the pipeline, SchemaGen (cheap) keeps the container path tested.
CONTAINER_TASKS = _our_tasks() or ["SchemaGen"]


# Set by the local orchestrator when it publishes an artifact, not by the executor.
LOCAL_ORCHESTRATOR_PROPERTIES = {"is_external"}
# Custom properties that carry a gate's decision (ModelBlessing, PushedModel).
DECISION_PROPERTIES = {"blessed", "pushed"}


def _listing(uri: str) -> set[str]:
    return {name.rstrip("/") for name in fileio.listdir(uri)} if fileio.exists(uri) else set()


@pytest.mark.parametrize("task_name", CONTAINER_TASKS)
def test_executor_runs_as_the_container_would(compiled, demo_run, task_name: str, tmp_path) -> None:
    job = compiled.job
    task = job.tasks[task_name]

    def from_demo_run(producer: str, key: str) -> list[dict]:
        artifacts = demo_run.outputs(producer)[key]
        types = demo_run.store.get_artifact_types_by_id([a.type_id for a in artifacts])
        return [spec_runner.runtime_artifact_from_mlmd(a, t) for a, t in zip(artifacts, types, strict=True)]

    task_root = str(tmp_path / task_name)
    executor_input = spec_runner.build_executor_input(job, task, from_demo_run, task_root, "executor-test")
    outputs = spec_runner.run_task(task, executor_input)

    with open(os.path.join(task_root, spec_runner.EXECUTOR_OUTPUT_FILENAME)) as f:
        executor_output = json.load(f)
    assert set(executor_output["artifacts"]) == set(task.output_types) == set(outputs)
    local_outputs = demo_run.outputs(task_name)
    for key, (artifact,) in outputs.items():
        assert artifact["uri"] == os.path.join(task_root, key)
        assert artifact["name"] == f"local/executor-test/{task_name}/{key}"
        # The same files as the local run wrote (top level; an output a gate leaves empty stays empty).
        (local,) = local_outputs[key]
        assert _listing(artifact["uri"]) == _listing(local.uri), f"{task_name}.{key}"
        # Properties and custom properties come back as metadata: what the Vertex / KFP UIs show.
        expected = (set(local.properties) | set(local.custom_properties)) - LOCAL_ORCHESTRATOR_PROPERTIES
        metadata = {k.removeprefix("custom:"): v for k, v in artifact.get("metadata", {}).items()}
        assert expected <= set(metadata), f"{task_name}.{key}"
        # Gate decisions must not depend on the orchestrator: inputs arrive as JSON metadata (numbers as floats),
        # not as the MLMD int values a local run hands over.
        for decision in DECISION_PROPERTIES & set(local.custom_properties):
            assert metadata[decision] == local.custom_properties[decision].int_value, f"{task_name}.{key}.{decision}"


# --- the whole compiled job, task by task ------------------------------------------------------------------------

@pytest.mark.skipif(os.environ.get("QUANTGATE_KUBEFLOW_E2E") != "1",
                    reason="every task is a fresh process (the 9 tasks: about 3.5 minutes on an idle 2-core "
                           "machine, measured); QUANTGATE_KUBEFLOW_E2E=1")
def test_the_compiled_job_runs_end_to_end(compiled, tmp_path) -> None:
    results = spec_runner.run_pipeline_job(compiled.job, str(tmp_path), job_id="e2e")
    assert list(results) == compiled.job.order()
    assert set(results) == set(compiled.job.tasks)
    for name, result in results.items():
        task = compiled.job.tasks[name]
        assert set(result.outputs) == set(task.output_types), name
        for key, (artifact,) in result.outputs.items():
            assert fileio.exists(artifact["uri"]) and fileio.listdir(artifact["uri"]), f"{name}.{key} is empty"
    # The ExampleGen driver (preCacheCheck) ran and its fingerprint reached the examples' metadata.
    (examples,) = results["CsvExampleGen"].outputs["examples"]
    assert examples["metadata"]["input_fingerprint"].startswith("split:single_split")
    (model,) = results["Trainer"].outputs["model"]
    assert fileio.exists(os.path.join(model["uri"], "Format-Serving", "saved_model.pb"))
    (blessing,) = results["Evaluator"].outputs["blessing"]
    assert blessing["metadata"]["blessed"] == 1.0
    # The Evaluator's model id comes back as the upstream artifact's name, as Vertex records it.
    assert blessing["metadata"]["current_model_id"] == model["name"]
    # Ours: the quantized model in the layout the Pusher expects, and the push follows both blessings.
    (quantized,) = results["Quantizer"].outputs["quantized_model"]
    assert fileio.exists(os.path.join(quantized["uri"], "Format-Serving", "model.tflite"))
    (quantization_blessing,) = results["QuantizationEvaluator"].outputs["blessing"]
    (pushed,) = results["QuantizedModelPusher"].outputs["pushed_model"]
    assert pushed["metadata"]["pushed"] == min(quantization_blessing["metadata"]["blessed"],
                                               blessing["metadata"]["blessed"])


# --- the taxi job's tasks up to Transform, one by one ------------------------------------------------------------

TAXI_TASKS = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "Transform")


def test_the_taxi_spec_runs_up_to_its_transform_task(taxi_compiled, tmp_path) -> None:
    job = taxi_compiled.job
    assert set(TAXI_TASKS) <= set(job.tasks) and sorted(job.tasks["Transform"].dependencies) == ["CsvExampleGen", "SchemaGen"]
    outputs: dict[str, dict[str, list[dict]]] = {}
    for name in TAXI_TASKS:  # each a fresh container process, upstream outputs as their executor output files say
        task = job.tasks[name]
        executor_input = spec_runner.build_executor_input(
            job, task, lambda producer, key: outputs[producer][key], str(tmp_path / name), "taxi")
        outputs[name] = spec_runner.run_task(task, executor_input)
    (graph,) = outputs["Transform"]["transform_graph"]
    for folder in ("transform_fn", "transformed_metadata"):
        assert fileio.isdir(os.path.join(graph["uri"], folder)), folder
    # the vocabularies the pushed version ships, computed from the raw strings by the image's preprocessing_fn
    assets = os.path.join(graph["uri"], "transform_fn", "assets")
    assert {"payment_type", "company"} <= _listing(assets)
    with fileio.open(os.path.join(assets, "payment_type")) as f:
        assert "Cash" in f.read().splitlines()
    (transformed,) = outputs["Transform"]["transformed_examples"]
    for split in ("train", "eval"):
        assert fileio.glob(os.path.join(transformed["uri"], f"Split-{split}", "*.gz")), split
