"""kubeflow/runner.py: option checks (pure), the compiled PipelineJob (one compile per session), the CLI."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
import runner
import spec_runner
from spec_runner import constant_value
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact, channel, component_spec
from tfx.utils import import_utils, proto_utils

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER_PATH = os.path.join(REPO, "kubeflow", "runner.py")
KUBEFLOW_README = os.path.join(REPO, "docs", "guides", "kubeflow.md")
ENTRYPOINT = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]


# --- pure option checks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["penguin-quantgate", "a", "0-x", "q" * 128])
def test_valid_pipeline_names_pass(name: str) -> None:
    assert runner.validate_pipeline_name(name) == name


@pytest.mark.parametrize(("name", "suggestion"), [("Penguin_Quant", "penguin-quant"), ("-lead", "lead"),
                                                  ("q" * 129, "q" * 128), ("under_score", "under-score")])
def test_invalid_pipeline_names_are_refused_with_a_fix(name: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match=r"lowercase letters, digits and '-'") as error:
        runner.validate_pipeline_name(name)
    assert repr(suggestion) in str(error.value)


def test_direct_runner_args_and_extras() -> None:
    options = runner.KubeflowOptions(direct_num_workers=0, extra_beam_args=["--direct_running_mode=multi_threading"])
    assert runner.beam_pipeline_args(options) == [
        "--runner=DirectRunner", "--direct_num_workers=0", "--direct_running_mode=multi_threading"]


def test_dataflow_needs_project_region_and_temp_location() -> None:
    with pytest.raises(ValueError, match="--project, --region, --temp-location"):
        runner.beam_pipeline_args(runner.KubeflowOptions(beam_runner="DataflowRunner"))
    options = runner.KubeflowOptions(beam_runner="DataflowRunner", project="p", region="europe-west4",
                                     temp_location="gs://b/tmp")
    assert runner.beam_pipeline_args(options) == [
        "--runner=DataflowRunner", "--project=p", "--region=europe-west4", "--temp_location=gs://b/tmp"]


def test_flink_needs_the_job_server_and_the_worker_pool_and_names_the_image() -> None:
    with pytest.raises(ValueError, match="--flink-job-endpoint, --flink-worker-pool"):
        runner.beam_pipeline_args(runner.KubeflowOptions(beam_runner="FlinkRunner"))
    options = runner.KubeflowOptions(beam_runner="FlinkRunner", flink_job_endpoint="flink-beam:8099",
                                     flink_worker_pool="localhost:50000", flink_parallelism=4, image="img:1")
    assert runner.beam_pipeline_args(options) == [
        "--runner=PortableRunner", "--job_endpoint=flink-beam:8099", "--environment_type=EXTERNAL",
        "--environment_config=localhost:50000", "--parallelism=4", "--sdk_worker_parallelism=4",
        "--sdk_container_image=img:1"]


def test_a_flink_compile_bakes_the_flink_args_into_every_beam_task(tmp_path) -> None:
    assert runner.main(["--output-dir", str(tmp_path), "--beam-runner", "FlinkRunner", "--flink-job-endpoint",
                        "flink-beam:8099", "--flink-worker-pool", "localhost:50000"]) == 0
    job = json.loads((tmp_path / "pipeline.json").read_text())
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    beam_tasks = [e for e in executors.values() if "--job_endpoint=flink-beam:8099" in json.dumps(e)]
    # CsvExampleGen, StatisticsGen, RepresentativeDatasetGen, Evaluator, QuantizationEvaluator
    assert len(beam_tasks) >= 5
    assert all("--runner=DirectRunner" not in json.dumps(e) for e in executors.values())


def test_unknown_beam_runner_is_refused() -> None:
    with pytest.raises(ValueError, match="DirectRunner, DataflowRunner, FlinkRunner"):
        runner.beam_pipeline_args(runner.KubeflowOptions(beam_runner="SparkRunner"))


def test_overrides_parse_json_then_text() -> None:
    assert runner.parse_overrides(["train_steps=500", "float_accuracy_threshold=0.75", "label_key=species"]) == {
        "train_steps": 500, "float_accuracy_threshold": 0.75, "label_key": "species"}


def test_dotted_overrides_start_from_the_pipelines_own_configs() -> None:
    from quantgate.pipelines.config import AccuracySearch
    from quantgate.pipelines.pipeline import PENGUIN_GATE, PENGUIN_QUANTIZE
    from quantgate.pipelines.taxi import TAXI_GATE

    overrides = runner.parse_overrides(["gate.max_delta=0.02", "gate.delta_bound=upper", "train_steps=5",
                                        'quantize.candidate_modes=["float16"]', "quantize.accuracy_search={}"],
                                       "penguin")
    assert overrides["train_steps"] == 5
    assert overrides["gate"] == PENGUIN_GATE.with_overrides({"max_delta": 0.02, "delta_bound": "upper"})
    assert overrides["gate"].slicing_feature_keys == ("island",)  # penguin's, kept
    assert overrides["quantize"] == PENGUIN_QUANTIZE.with_overrides(
        {"candidate_modes": ("float16",), "accuracy_search": AccuracySearch()})
    taxi = runner.parse_overrides(["gate.latency_measure=end_to_end"], "taxi")["gate"]
    assert (taxi.metric, taxi.latency_measure) == (TAXI_GATE.metric, "end_to_end")


@pytest.mark.parametrize(("item", "message"), [
    ("no_such_knob=1", "not a parameter of quantgate.pipelines.pipeline.create_pipeline; known: .*train_steps"),
    ("pipeline_root=/x", "not a parameter"),  # has its own flag
    ("train_steps", "expected KEY=VALUE"),
    ("quantization_max_delta=0.1", "not a parameter.*gate.<field>"),  # the flat knobs are gone
    ('gate={"max_delta": 0.1}', "not a parameter.*gate.<field>"),  # the object is set field by field
    ("gate.max_detla=0.1", "gate.max_detla: not a configuration key; known: .*gate.max_delta"),
    ("quantize.mode=int3", "QuantizeConfig: unknown mode 'int3'"),
    ("gate.confidence=high", "GateConfig: confidence must be a finite number, got 'high'"),
    ("gate.slicing_feature_keys=island", "slicing_feature_keys must be a list"),
])
def test_bad_overrides_are_refused(item: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        runner.parse_overrides([item])


@pytest.mark.parametrize("uri", ["gs://b/root", "s3://b/root", "hdfs://nn/root", "minio://b/root", "file:///x"])
def test_uris_are_kept_as_they_are(uri: str) -> None:
    assert runner.absolute_location(uri, "--pipeline-root") == uri


def test_relative_local_paths_are_made_absolute_and_logged(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    cwd = os.getcwd()
    options = runner.with_absolute_locations(runner.KubeflowOptions(
        pipeline_root="rel/root", data_root="./data", module_file="m/trainer.py",
        pipeline_kwargs={"push_destination": "serving", "train_steps": 5}))
    assert options.pipeline_root == os.path.join(cwd, "rel", "root")
    assert options.data_root == os.path.join(cwd, "data")
    assert options.module_file == os.path.join(cwd, "m", "trainer.py")
    assert options.pipeline_kwargs == {"push_destination": os.path.join(cwd, "serving"), "train_steps": 5}
    assert "--data-root ./data is a relative local path: resolved to " + os.path.join(cwd, "data") in caplog.text
    # absolute paths and URIs are left exactly as given (no normalization), and nothing is logged for them
    caplog.clear()
    kept = runner.KubeflowOptions(pipeline_root="/abs/root/", data_root="gs://b/data")
    assert runner.with_absolute_locations(kept) == kept
    assert "relative local path" not in caplog.text


# --- the CLI ----------------------------------------------------------------------------------------------------

def test_help_documents_every_option_without_importing_tensorflow() -> None:
    result = subprocess.run([sys.executable, RUNNER_PATH, "--help"], capture_output=True, text=True, timeout=60,
                            check=True)
    for flag in ("--pipeline", "--pipeline-name", "--pipeline-root", "--data-root", "--image", "--output-dir", "--beam-runner",
                 "--project", "--region", "--temp-location", "--beam-arg", "--set", "--trainer-run-fn",
                 "--transform-preprocessing-fn", "--module-file", "--pipeline-spec-2-0", "--no-cache"):
        assert flag in result.stdout
    assert "kubeflow/README.md" in result.stdout


def test_cli_refuses_a_bad_name_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--pipeline-name", "Penguin_Q"]) == 2
    assert "'penguin-q'" in capsys.readouterr().err


def test_cli_without_flags_compiles_the_demo_with_placeholders_offline(tmp_path) -> None:
    # gs:// placeholders and no network: compiling must not write to the pipeline root (no user-module wheel).
    assert runner.main(["--output-dir", str(tmp_path)]) == 0
    job = json.loads((tmp_path / "pipeline.json").read_text())
    assert job["runtimeConfig"]["gcsOutputDirectory"] == runner.DEFAULT_PIPELINE_ROOT
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == runner.DEFAULT_PIPELINE_NAME
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert constant_value(tasks["CsvExampleGen"]["inputs"]["parameters"]["input_base"]) == runner.DEFAULT_DATA_ROOT
    assert constant_value(tasks["Trainer"]["inputs"]["parameters"]["run_fn"]) == runner.PENGUIN_RUN_FN
    assert "_wheels" not in json.dumps(job)
    images = {e["container"]["image"] for e in job["pipelineSpec"]["deploymentSpec"]["executors"].values()}
    assert images == {runner.DEFAULT_IMAGE}


def test_cli_compiles_the_taxi_pipeline_with_its_code_from_the_image(tmp_path) -> None:
    assert runner.main(["--pipeline", "taxi", "--output-dir", str(tmp_path)]) == 0
    job = json.loads((tmp_path / "pipeline.json").read_text())
    taxi = runner.PIPELINES["taxi"]
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == taxi.pipeline_name
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert constant_value(tasks["CsvExampleGen"]["inputs"]["parameters"]["input_base"]) == (
        runner.default_data_root(taxi))
    assert constant_value(tasks["Trainer"]["inputs"]["parameters"]["run_fn"]) == taxi.trainer_run_fn
    transform = tasks["Transform"]["inputs"]["parameters"]
    assert constant_value(transform["preprocessing_fn"]) == taxi.transform_preprocessing_fn
    assert "module_file" not in transform and "_wheels" not in json.dumps(job)


def test_cli_compiles_the_digits_qat_pipeline_with_both_trainers_from_the_image(tmp_path) -> None:
    assert runner.main(["--pipeline", "digits-qat", "--output-dir", str(tmp_path)]) == 0
    job = json.loads((tmp_path / "pipeline.json").read_text())
    digits = runner.PIPELINES["digits-qat"]
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert {"Trainer", "QatTrainer", "PtqQuantizer", "QatQuantizer", "QuantizationEvaluator"} <= set(tasks)
    for trainer in ("Trainer", "QatTrainer"):
        assert constant_value(tasks[trainer]["inputs"]["parameters"]["run_fn"]) == digits.trainer_run_fn
    assert tasks["QatTrainer"]["inputs"]["artifacts"]["base_model"]["taskOutputArtifact"]["producerTask"] == "Trainer"
    assert "_wheels" not in json.dumps(job)


def test_cli_compiles_the_candidates_with_three_quantizers_feeding_evaluator_and_pusher(tmp_path) -> None:
    assert runner.main(["--pipeline", "penguin", "--output-dir", str(tmp_path), "--set", "gate.selection=fastest"]) == 0
    job = json.loads((tmp_path / "pipeline.json").read_text())
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    expected = {"quantized_model": "Quantizer", "quantized_model_1": "Quantizer_float16",
                "quantized_model_2": "Quantizer_dynamic_range"}
    evaluator = tasks["QuantizationEvaluator"]["inputs"]
    assert {k: v["taskOutputArtifact"]["producerTask"] for k, v in evaluator["artifacts"].items()
            if k.startswith("quantized_model")} == expected
    pusher = tasks["QuantizedModelPusher"]["inputs"]["artifacts"]
    assert {k: pusher[k]["taskOutputArtifact"]["producerTask"] for k in ("model", "model_1", "model_2")} == (
        {"model": "Quantizer", "model_1": "Quantizer_float16", "model_2": "Quantizer_dynamic_range"})
    assert "fastest" in json.dumps(evaluator["parameters"]["selection"])

    assert runner.main(["--pipeline", "penguin", "--output-dir", str(tmp_path), "--set",
                        "quantize.candidate_modes=[]"]) == 0
    tasks = json.loads((tmp_path / "pipeline.json").read_text())["pipelineSpec"]["root"]["dag"]["tasks"]
    assert [task for task in tasks if task.startswith("Quantizer")] == ["Quantizer"]


def test_taxi_overrides_are_checked_against_its_own_factory() -> None:
    assert runner.parse_overrides(["float_auc_threshold=0.7"], "taxi") == {"float_auc_threshold": 0.7}
    with pytest.raises(ValueError, match="not a parameter of quantgate.pipelines.taxi.create_taxi_pipeline; known: "
                                         ".*float_auc_threshold"):
        runner.parse_overrides(["float_accuracy_threshold=0.7"], "taxi")  # penguin's knob
    with pytest.raises(ValueError, match="not a parameter"):  # has its own flag
        runner.parse_overrides(["transform_preprocessing_fn=x.y"], "taxi")


def test_a_transform_flag_on_the_penguin_pipeline_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--transform-preprocessing-fn", "m.preprocessing_fn"]) == 2
    assert "the penguin pipeline has no Transform" in capsys.readouterr().err


def test_a_module_file_packages_both_taxi_modules(tmp_path) -> None:
    from quantgate.pipelines.taxi import TAXI_TRAINER_MODULE_FILE

    options = runner.KubeflowOptions.for_pipeline("taxi", pipeline_root=str(tmp_path / "root"),
                                                  module_file=TAXI_TRAINER_MODULE_FILE)
    by_id = {c.id: c for c in runner.build_pipeline(options).components}
    assert by_id["Trainer"].exec_properties["module_file"] == TAXI_TRAINER_MODULE_FILE
    assert by_id["Trainer"].exec_properties["run_fn"] is None
    assert by_id["Transform"].exec_properties["module_file"].endswith("taxi_transform.py")
    assert by_id["Transform"].exec_properties["preprocessing_fn"] is None


def _readme_spec_run_commands() -> tuple[list[str], list[str]]:
    """The compile and spec-run commands of docs/guides/kubeflow.md's section 5 (its first bash block), as argv lists."""
    with open(KUBEFLOW_README) as f:
        readme = f.read()
    section = readme.split("## 5. Prove the compiled spec runs, without a cluster", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    (compile_cmd,) = [c for c in commands if "kubeflow/runner.py" in c]
    (run_cmd,) = [c for c in commands if "kubeflow/spec_runner.py" in c]
    return (compile_cmd[compile_cmd.index("kubeflow/runner.py") + 1:],
            run_cmd[run_cmd.index("kubeflow/spec_runner.py") + 1:])


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_readme_spec_run_command_compiles_a_job_with_only_absolute_local_paths(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's commands run from the repository root; the job itself is not run here (that is the opt-in
    # end-to-end test): compiling shows whether every task would find its paths from its own folder.
    compile_args, run_args = _readme_spec_run_commands()
    output_dir = _flag(compile_args, "--output-dir")
    assert run_args[0] == os.path.join(output_dir, "pipeline.json")
    assert _flag(run_args, "--pipeline-root") == _flag(compile_args, "--pipeline-root")
    monkeypatch.chdir(REPO)
    # Written into tmp_path instead of the README's folder (the last --output-dir wins).
    assert runner.main([*compile_args, "--output-dir", str(tmp_path)]) == 0
    job = spec_runner.PipelineJob.load(str(tmp_path / "pipeline.json"))
    locations = spec_runner.job_locations(job)
    assert {"runtimeConfig.gcsOutputDirectory", "CsvExampleGen.input_base"} <= set(locations)
    assert any(where.endswith(".push_destination.filesystem.base_directory") for where in locations), locations
    assert spec_runner.relative_locations(job) == {}
    assert all(os.path.isabs(value) for value in locations.values()), locations
    assert locations["CsvExampleGen.input_base"] == os.path.join(REPO, _flag(compile_args, "--data-root"))
    assert locations["runtimeConfig.gcsOutputDirectory"] == os.path.abspath(_flag(compile_args, "--pipeline-root"))


# --- the compiled job (session fixture `compiled`, see conftest) --------------------------------------------------

def test_job_header(compiled) -> None:
    spec = compiled.job.spec
    assert spec["schemaVersion"] == "2.1.0"
    assert spec["sdkVersion"] == "tfx-1.16.0"
    assert spec["pipelineInfo"]["name"] == compiled.options.pipeline_name
    assert compiled.job.job["runtimeConfig"]["gcsOutputDirectory"] == compiled.options.pipeline_root


def test_every_component_is_a_task_with_its_dependencies(compiled) -> None:
    tasks = compiled.job.tasks
    assert set(tasks) == {c.id for c in compiled.pipeline.components}
    for node in compiled.pipeline.components:
        assert set(tasks[node.id].dependencies) == {up.id for up in node.upstream_nodes}, node.id
        # every input channel is wired to its producer's output key
        wired = {key: (ref["taskOutputArtifact"]["producerTask"], ref["taskOutputArtifact"]["outputArtifactKey"])
                 for key, ref in tasks[node.id].spec.get("inputs", {}).get("artifacts", {}).items()}
        expected = {key: (channel.producer_component_id, channel.output_key) for key, channel in node.inputs.items()}
        assert wired == expected, node.id


def test_every_executor_class_path_imports(compiled) -> None:
    for task in compiled.job.tasks.values():
        executor_class = import_utils.import_class_by_path(task.executor_class_path)
        assert issubclass(executor_class, base_executor.BaseExecutor), task.name


def test_containers_use_the_configured_image_entrypoint_and_beam_args(compiled) -> None:
    beam_args = runner.beam_pipeline_args(compiled.options)
    for task in compiled.job.tasks.values():
        container = task.container
        assert container["image"] == compiled.options.image
        assert container["command"] == ENTRYPOINT
        assert container["args"][-len(beam_args):] == beam_args, task.name


def _expected_constant(value: object) -> object:
    """How the compiler serializes an exec property: protos and containers as JSON, bools as ints."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str):
        return value
    if hasattr(value, "DESCRIPTOR"):
        return json.loads(proto_utils.proto_to_json(value))
    return value


def test_parameters_reach_the_spec_with_their_values(compiled) -> None:
    checked = 0
    for node in compiled.pipeline.components:
        parameters = compiled.job.tasks[node.id].spec.get("inputs", {}).get("parameters", {})
        for key, value in node.exec_properties.items():
            if value is None:
                assert key not in parameters, f"{node.id}.{key} is None but compiled"
                continue
            assert key in parameters, f"{node.id}.{key} missing from the compiled spec"
            compiled_value = constant_value(parameters[key])
            expected = _expected_constant(value)
            if isinstance(compiled_value, str) and not isinstance(expected, str):
                compiled_value = json.loads(compiled_value)
            assert compiled_value == expected, f"{node.id}.{key}"
            checked += 1
    assert checked >= 15
    trainer = compiled.job.tasks["Trainer"].spec["inputs"]["parameters"]
    assert json.loads(constant_value(trainer["train_args"])) == {"num_steps": compiled.options.pipeline_kwargs["train_steps"]}


# --- what Kubeflow v2 would reject, caught before compiling --------------------------------------------------------

class _PropertiedThing(artifact.Artifact):
    TYPE_NAME = "quantgate_test.PropertiedThing"
    PROPERTIES = {"size": artifact.Property(type=artifact.PropertyType.INT)}


class _BadlyNamedThing(artifact.Artifact):
    TYPE_NAME = "BadlyNamedThing"


class _MakeThingsSpec(component_spec.ComponentSpec):
    PARAMETERS: dict = {}
    INPUTS: dict = {}
    OUTPUTS = {"thing": component_spec.ChannelParameter(type=_PropertiedThing),
               "other": component_spec.ChannelParameter(type=_BadlyNamedThing)}


class _MakeThings(base_component.BaseComponent):
    SPEC_CLASS = _MakeThingsSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(base_executor.BaseExecutor)

    def __init__(self) -> None:
        super().__init__(spec=_MakeThingsSpec(thing=channel.Channel(type=_PropertiedThing),
                                              other=channel.Channel(type=_BadlyNamedThing)))


def test_kubeflow_problems_name_the_type_the_component_and_the_fix() -> None:
    from tfx import v1 as tfx

    pipeline = tfx.dsl.Pipeline(pipeline_name="p", pipeline_root="/tmp/unused", components=[_MakeThings()])
    problems = runner.kubeflow_problems(pipeline)
    assert len(problems) == 2, problems
    properties, name = sorted(problems, key=lambda p: "PROPERTIES" not in p)
    assert "quantgate_test.PropertiedThing" in properties and "['size']" in properties
    assert "set_*_custom_property" in properties
    assert "BadlyNamedThing" in name and "TYPE_NAME must match" in name


def test_the_real_pipeline_has_no_kubeflow_problems(compiled) -> None:
    assert runner.kubeflow_problems(compiled.pipeline) == []
