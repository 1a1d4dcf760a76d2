"""Shared fixtures. The demo pipeline runs once per test session (``demo_run``); tests check facts on its outputs."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402
from ml_metadata import metadata_store  # noqa: E402
from ml_metadata.proto import metadata_store_pb2  # noqa: E402

from quantgate.pipelines import lineage  # noqa: E402
from quantgate.pipelines.local_runner import LocalRunConfig, LocalRunPaths, run_local  # noqa: E402

# Small but real: enough steps for the penguin model to reach ~0.97 accuracy.
TEST_PIPELINE_KWARGS = {"train_steps": 200, "eval_steps": 10}


@dataclass
class DemoRun:
    """A finished local run of the demo pipeline and its MLMD store."""

    paths: LocalRunPaths
    store: metadata_store.MetadataStore

    def execution(self, component_id: str) -> metadata_store_pb2.Execution:
        execution = lineage.latest_complete_execution(self.store, self.paths.pipeline_name, component_id)
        assert execution is not None, f"no COMPLETE execution of {component_id}"
        return execution

    def outputs(self, component_id: str) -> dict[str, list[metadata_store_pb2.Artifact]]:
        return lineage.output_artifacts(self.store, self.execution(component_id).id)

    def output(self, component_id: str, key: str) -> metadata_store_pb2.Artifact:
        (artifact,) = self.outputs(component_id)[key]
        return artifact


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    paths = LocalRunPaths(home=str(tmp_path_factory.mktemp("demo")))
    run_local(LocalRunConfig(paths=paths, pipeline_kwargs=TEST_PIPELINE_KWARGS))
    return DemoRun(paths=paths, store=lineage.open_sqlite_store(paths.metadata_path))
