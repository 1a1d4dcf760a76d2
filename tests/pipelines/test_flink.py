"""``pipelines/flink.py``: the pinned job server, its Beam args, and refusals that name the fix."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.orchestration import data_types_utils
from tfx.types import artifact_utils, standard_artifacts

from quantgate.components.quantization_evaluator import executor as qe_executor
from quantgate.components.quantization_evaluator.spec import BLESSING_KEY, EVALUATION_KEY
from quantgate.components.shared import properties
from quantgate.components.shared.digests import bytes_sha256
from quantgate.components.types import QuantizationEvaluation
from quantgate.pipelines import flink, lineage
from quantgate.pipelines.kinds import PIPELINES
from quantgate.pipelines.local_runner import LocalRunPaths, direct_runner_args


def test_flink_beam_args_point_every_component_at_the_job_server_and_the_worker_pool() -> None:
    args = flink.flink_beam_args("localhost:8099", "localhost:50000", flink.FlinkSettings(parallelism=3, sdk_workers=2))
    assert args == ["--runner=PortableRunner", "--job_endpoint=localhost:8099", "--environment_type=EXTERNAL",
                    "--environment_config=localhost:50000", "--parallelism=3", "--sdk_worker_parallelism=2",
                    "--sdk_container_image=quantgate-local"]


def test_tfx_stages_no_sdist_of_itself_with_the_flink_args() -> None:
    # TFX builds and stages a source package of itself unless the args already say the workers have the code.
    from tfx.utils import dependency_utils

    args = flink.flink_beam_args("localhost:8099", "localhost:50000", flink.FlinkSettings())
    assert dependency_utils.make_beam_dependency_flags(args) == args


@pytest.mark.parametrize("field", ["parallelism", "sdk_workers"])
def test_settings_refuse_less_than_one(field: str) -> None:
    with pytest.raises(ValueError, match=f"FlinkSettings.{field} must be >= 1, got 0"):
        flink.FlinkSettings(**{field: 0})


def test_the_pins_cover_the_pom_and_are_sha256() -> None:
    pins = flink._pinned_digests()
    assert len(pins) > 100
    assert all(len(digest) == 64 and int(digest, 16) >= 0 for digest in pins.values())
    names = set(pins)
    for artifact in ("beam-runners-flink-1.19-2.62.0.jar", "beam-runners-java-job-service-2.62.0.jar",
                     "flink-runtime-1.19.0.jar", "slf4j-simple-1.7.30.jar"):
        assert artifact in names


def test_verify_names_missing_extra_and_changed_jars(tmp_path) -> None:
    pins = flink._pinned_digests()
    name = sorted(pins)[0]
    (tmp_path / name).write_bytes(b"not the pinned jar")
    (tmp_path / "extra.jar").write_bytes(b"")
    problems = flink.verify_job_server(str(tmp_path))
    assert f"sha256 differs: {name}" in problems
    assert "not pinned extra.jar" in problems
    assert sum(p.startswith("missing ") for p in problems) == len(pins) - 1
    assert hashlib.sha256(b"not the pinned jar").hexdigest() != pins[name]


def test_a_session_without_the_fetched_job_server_names_the_make_target(tmp_path) -> None:
    with pytest.raises(flink.FlinkError, match=r"run `make flink-job-server`"):
        with flink.flink_session(flink.FlinkSettings(), str(tmp_path / "logs"), cache=str(tmp_path / "empty")):
            pass
    assert not os.path.exists(tmp_path / "logs")


def test_fetch_without_maven_names_the_fix(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn here
    with pytest.raises(flink.FlinkError, match=r"Maven \(mvn\) is not on PATH: install it"):
        flink.fetch_job_server(str(tmp_path / "cache"))
    assert not os.path.exists(tmp_path / "cache")


@pytest.mark.skipif(shutil.which("mvn") is None, reason="needs Maven")
def test_the_cached_job_server_is_the_pinned_one() -> None:
    cache = flink.fetch_job_server()  # resolves once per machine (~15 s, 152 MB), then reuses the verified cache
    assert flink.verify_job_server(cache) == []


# --- the penguin pipeline on Flink, once per module, against the DirectRunner ----------------------------------------

# Every Beam component of the penguin pipeline (the Trainer, the Quantizers and the pusher are not Beam jobs).
BEAM_COMPONENTS = ("CsvExampleGen", "StatisticsGen", "RepresentativeDatasetGen", "Evaluator", "QuantizationEvaluator")
# metrics.json fields that describe the host or the run, not results of the evaluation: every key naming a latency
# (the batch-1 timings, at any depth) and the run's identity.
RUN_FIELDS = ("run",)


@dataclass
class FlinkRun:
    home: str
    stdout: str
    store: metadata_store.MetadataStore
    pipeline_name: str

    def execution(self, component_id: str) -> metadata_store_pb2.Execution:
        execution = lineage.latest_complete_execution(self.store, self.pipeline_name, component_id)
        assert execution is not None, f"no COMPLETE execution of {component_id} on Flink"
        return execution

    def output(self, component_id: str, key: str) -> metadata_store_pb2.Artifact:
        (artifact,) = lineage.output_artifacts(self.store, self.execution(component_id).id)[key]
        return artifact


@pytest.fixture(scope="module")
def flink_run(tmp_path_factory: pytest.TempPathFactory) -> FlinkRun:
    """``quantgate run --pipeline penguin --runner flink`` as a user runs it (the console script, a child process)."""
    flink.fetch_job_server()
    home = str(tmp_path_factory.mktemp("flink"))
    quantgate = os.path.join(os.path.dirname(sys.executable), "quantgate")
    result = subprocess.run([quantgate, "run", "--pipeline", "penguin", "--runner", "flink", "--home", home],
                            capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    paths = LocalRunPaths(home=home, pipeline_name=PIPELINES["penguin"].pipeline_name)
    return FlinkRun(home=home, stdout=result.stdout, store=lineage.open_sqlite_store(paths.metadata_path),
                    pipeline_name=paths.pipeline_name)


def _artifact(store: metadata_store.MetadataStore, mlmd_artifact: metadata_store_pb2.Artifact) -> types.Artifact:
    (artifact_type,) = store.get_artifact_types_by_id([mlmd_artifact.type_id])
    return artifact_utils.deserialize_artifact(artifact_type, mlmd_artifact)


def _differences(a: object, b: object, path: str = "") -> list[str]:
    """Where two JSON values differ, floats compared to a relative 1e-9 (a sum over workers may add in another
    order); an empty list when they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        return ([f"{path}.{key}: only on one side" for key in sorted(set(a) ^ set(b))]
                + [d for key in sorted(set(a) & set(b)) for d in _differences(a[key], b[key], f"{path}.{key}")])
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if a == pytest.approx(b, rel=1e-9, abs=1e-12) else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _without_timings(value: object, depth: int = 0) -> object:
    if isinstance(value, dict):
        return {key: _without_timings(item, depth + 1) for key, item in value.items()
                if "latency" not in key and not (depth == 0 and key in RUN_FIELDS)}
    if isinstance(value, list):
        return [_without_timings(item, depth + 1) for item in value]
    return value


def test_every_beam_component_ran_on_flink_and_the_model_was_pushed(flink_run: FlinkRun) -> None:
    assert "beam runner   : Flink (embedded cluster, parallelism 2" in flink_run.stdout
    (line,) = [line for line in flink_run.stdout.splitlines() if "runs the Beam components:" in line]
    assert "PortableRunner (job endpoint localhost:" in line
    beam_components = set(line.split("runs the Beam components: ")[1].split(", "))
    assert set(BEAM_COMPONENTS) <= beam_components and "Trainer" not in beam_components
    for component in (*BEAM_COMPONENTS, "Trainer", "Quantizer", "QuantizedModelPusher"):
        flink_run.execution(component)
    with open(os.path.join(flink_run.home, "logs", "flink-job-server.log")) as f:
        server_log = f.read()
    # One Flink job per Beam component (CsvExampleGen writes its splits in one job), each FINISHED, none FAILED.
    assert server_log.count("reached terminal state FINISHED") >= len(BEAM_COMPONENTS)
    assert "reached terminal state FAILED" not in server_log
    pushed = flink_run.output("QuantizedModelPusher", "pushed_model")
    assert pushed.custom_properties[properties.PUSHED].int_value == 1


def test_the_calibration_sample_is_byte_identical_to_the_direct_runner_s(flink_run: FlinkRun, demo_run) -> None:
    # The same CSV, ExampleGen's hash split, the same seed and strategy: the runner and its parallelism change nothing.
    files = []
    for run in (flink_run, demo_run):
        sample = run.output("RepresentativeDatasetGen", "representative_dataset")
        with open(os.path.join(sample.uri, properties.REPRESENTATIVE_DATA_FILENAME), "rb") as f:
            files.append(f.read())
        assert sample.custom_properties[properties.SHA256].string_value == bytes_sha256(files[-1])
    assert files[0] == files[1]


def test_the_evaluator_on_the_direct_runner_gives_the_flink_run_s_verdict_and_numbers(flink_run: FlinkRun,
                                                                                     tmp_path) -> None:
    # The same trained model and candidates (the Flink run's), evaluated again in-process on the DirectRunner.
    execution = flink_run.execution("QuantizationEvaluator")
    inputs = {key: [_artifact(flink_run.store, a) for a in artifacts]
              for key, artifacts in lineage.input_artifacts(flink_run.store, execution.id).items()}
    exec_properties = data_types_utils.build_value_dict(execution.custom_properties)
    evaluation, blessing = QuantizationEvaluation(), standard_artifacts.ModelBlessing()
    for artifact, name in ((evaluation, "evaluation"), (blessing, "blessing")):
        artifact.uri = str(tmp_path / name)
        os.makedirs(artifact.uri)
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=direct_runner_args(),
                                                          tmp_dir=str(tmp_path / "tmp"))
    qe_executor.Executor(context).Do(inputs, {EVALUATION_KEY: [evaluation], BLESSING_KEY: [blessing]},
                                     exec_properties)
    on_flink = flink_run.output("QuantizationEvaluator", "evaluation")
    with open(os.path.join(on_flink.uri, properties.METRICS_FILENAME)) as f:
        flink_metrics = json.load(f)
    with open(os.path.join(evaluation.uri, properties.METRICS_FILENAME)) as f:
        direct_metrics = json.load(f)
    assert flink_metrics["overall"]["num_examples"] > 0
    assert _differences(_without_timings(flink_metrics), _without_timings(direct_metrics)) == []
    flink_blessing = flink_run.output("QuantizationEvaluator", "blessing")
    assert blessing.get_int_custom_property(properties.BLESSED) == \
        flink_blessing.custom_properties[properties.BLESSED].int_value


def test_the_pushed_bytes_are_the_chosen_candidate_s(flink_run: FlinkRun) -> None:
    pushed = flink_run.output("QuantizedModelPusher", "pushed_model")
    destination = pushed.custom_properties[properties.PUSHED_DESTINATION].string_value
    with open(os.path.join(destination, "model.tflite"), "rb") as f:
        pushed_bytes = f.read()
    chosen = [flink_run.output(component, "quantized_model") for component in
              ("Quantizer", "Quantizer_float16", "Quantizer_dynamic_range")]
    digests = {c.custom_properties[properties.SHA256].string_value for c in chosen}
    assert bytes_sha256(pushed_bytes) in digests
    assert pushed.custom_properties[properties.SHA256].string_value == bytes_sha256(pushed_bytes)
