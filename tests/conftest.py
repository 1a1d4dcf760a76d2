"""Shared fixtures and the test tiers. The demo pipeline runs once per test session (``demo_run``); tests check facts
on its outputs.

Tiers: a test that runs a pipeline (LocalDagRunner, ``run_local``, a compiled job) or requests a fixture that does
gets the ``pipeline`` marker here (``pytest_collection_modifyitems``); a test without a pipeline that installs something
or takes several seconds of conversions, Beam runs or trainings gets ``slow``. ``make check`` runs ``-m "not pipeline
and not slow"`` (the unit tier, under 3 minutes on 2 cores), ``make test`` runs everything.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dataclasses import dataclass  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import pytest  # noqa: E402

if TYPE_CHECKING:  # imported where used: the unit tier never loads the pipeline code through this file
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from quantgate.pipelines.local_runner import LocalRunPaths

DEMO_PIPELINE = "penguin"
# Small but real: enough steps for the penguin model to reach ~0.97 accuracy.
TEST_PIPELINE_KWARGS = {"train_steps": 200, "eval_steps": 10}


# Fixtures that run a pipeline: any test requesting one (directly or through another fixture) is in the pipeline tier.
# By convention a fixture named ``*_run`` is a pipeline run (a new one needs no entry here); the others are listed.
PIPELINE_FIXTURES = frozenset({
    "demo_run",  # here: the demo pipeline, once per session
    "resumed",  # faults/: runs killed and resumed in child processes
    "diabetes_run", "digits_run", "images_run", "imdb_run", "taxi_run", "example_run", "mysql_run",  # pipelines/
})

# Tests that run a pipeline in their own body, in files whose marks live elsewhere (node ids from the rootdir, without
# parameters). Files this conftest owns mark such tests with ``@pytest.mark.pipeline`` instead.
PIPELINE_TESTS = frozenset({
    "tests/kubeflow/test_spec_runner.py::test_the_compiled_job_runs_end_to_end",
    "tests/kubeflow/test_spec_runner.py::test_the_taxi_spec_runs_up_to_its_transform_task",
    "tests/pipelines/test_main.py::test_run_error_is_one_line_and_the_traceback_is_in_the_log",
})

# Whole folders of pipeline runs.
PIPELINE_DIRS = ("tests/faults/",)

# No pipeline, but too long or too heavy for the unit tier (``make check``, under 3 minutes on 2 cores): whole files
# that build and install a wheel in a new venv, install Debian's chromium with apt-get or resolve against PyPI; then
# single tests (node ids without parameters) and the tests of expensive fixtures, each several seconds of real
# conversions, Beam runs, trainings or child processes (seconds measured on the 2-core machine, under load).
SLOW_FILES = (
    "tests/test_wheel.py",
    "tests/components/quantization_evaluator/test_report_browser.py",
    "tests/kubeflow/test_image_metadata.py",
    "tests/components/quantizer/test_qat.py",  # trains digits models with fake-quant ops (12 s)
    "tests/components/quantizer/test_search.py",  # accuracy searches over many conversions (25 s)
)
SLOW_TESTS = frozenset({
    "tests/pipelines/test_console.py::test_run_console_keeps_the_terminal_quiet_and_the_log_file_complete",  # 26 s
    "tests/components/shared/test_keras_call.py::"
    "test_a_recurrent_model_converts_with_a_fixed_batch_and_is_fed_one_example_per_invoke",  # 23 s
    "tests/components/shared/test_keras_call.py::"
    "test_int16x8_on_a_recurrent_model_is_refused_naming_the_modes_that_convert",  # 6 s
    "tests/components/quantized_model_pusher/test_publish.py::"
    "test_a_full_destination_gets_a_clear_error_and_leaves_nothing",  # 24 s (2 cases)
    "tests/components/quantized_model_pusher/test_publish.py::"
    "test_kill_between_write_and_rename_leaves_no_partial_version",  # 9 s
    "tests/components/quantized_model_pusher/test_executor.py::"
    "test_the_transforms_vocabularies_ship_beside_the_model",  # 8 s (a TFT Beam run)
    "tests/test_install.py::test_stack_imports_at_the_documented_versions",  # 13 s
    "tests/components/quantizer/test_isolation.py::test_the_server_exits_with_its_parent",  # 12 s
    "tests/components/quantization_evaluator/test_output_kind.py::"
    "test_binary_logits_score_as_their_sigmoid_probabilities",  # 14 s
    "tests/components/quantization_evaluator/test_output_kind.py::"
    "test_three_class_logits_score_as_their_softmax_probabilities",  # 12 s
})
SLOW_FIXTURES = frozenset({
    "tiny_transform",  # a tft_beam run and an int8 conversion through the transform graph (18 s)
    "three_candidates",  # two more conversions, then one evaluator run over three candidates
    "trap_models",  # three Keras models over scikit-learn's data sets (6 s)
    "image_transform_graph",  # a tft_beam run over PNG images (5 s, then its tests)
})


def _is_pipeline_fixture(name: str) -> bool:
    return name in PIPELINE_FIXTURES or name.endswith("_run")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        node_id = item.nodeid.split("[", 1)[0]
        fixtures = getattr(item, "fixturenames", ())
        if (any(_is_pipeline_fixture(name) for name in fixtures) or node_id in PIPELINE_TESTS
                or node_id.startswith(PIPELINE_DIRS)):
            item.add_marker(pytest.mark.pipeline)
        if (node_id.startswith(SLOW_FILES) or node_id in SLOW_TESTS
                or SLOW_FIXTURES.intersection(fixtures)):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> None:
    """A pipeline-run fixture reached without the marker (``request.getfixturevalue``) fails instead of running a
    pipeline inside ``make check``: request it as an argument, or mark the test ``pipeline``."""
    item = getattr(request, "_pyfuncitem", None)
    if _is_pipeline_fixture(fixturedef.argname) and item is not None and item.get_closest_marker("pipeline") is None:
        pytest.fail(f"{item.nodeid} reaches the pipeline-run fixture {fixturedef.argname!r} without the 'pipeline' "
                    "marker: request it as an argument or mark the test @pytest.mark.pipeline", pytrace=False)


@dataclass
class DemoRun:
    """A finished local run of the demo pipeline and its MLMD store."""

    paths: LocalRunPaths
    store: metadata_store.MetadataStore

    def execution(self, component_id: str) -> metadata_store_pb2.Execution:
        from quantgate.pipelines import lineage

        execution = lineage.latest_complete_execution(self.store, self.paths.pipeline_name, component_id)
        assert execution is not None, f"no COMPLETE execution of {component_id}"
        return execution

    def outputs(self, component_id: str) -> dict[str, list[metadata_store_pb2.Artifact]]:
        from quantgate.pipelines import lineage

        return lineage.output_artifacts(self.store, self.execution(component_id).id)

    def output(self, component_id: str, key: str) -> metadata_store_pb2.Artifact:
        (artifact,) = self.outputs(component_id)[key]
        return artifact


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The penguin demo, named explicitly: the tests on it check penguin facts whatever ``quantgate run`` defaults to."""
    from quantgate.pipelines import lineage
    from quantgate.pipelines.kinds import pipeline_kind
    from quantgate.pipelines.local_runner import LocalRunConfig, LocalRunPaths, run_local

    paths = LocalRunPaths(home=str(tmp_path_factory.mktemp("demo")), pipeline_name=pipeline_kind(DEMO_PIPELINE).pipeline_name)
    run_local(LocalRunConfig(paths=paths, pipeline=DEMO_PIPELINE, pipeline_kwargs=TEST_PIPELINE_KWARGS))
    return DemoRun(paths=paths, store=lineage.open_sqlite_store(paths.metadata_path))
