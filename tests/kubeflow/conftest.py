"""Fixtures for the Kubeflow tests: kubeflow/ is a folder of entry points, put on sys.path here, and one compile."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import pytest

KUBEFLOW_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "kubeflow")
if KUBEFLOW_DIR not in sys.path:
    sys.path.insert(0, KUBEFLOW_DIR)

import runner  # noqa: E402
import spec_runner  # noqa: E402

from pipelines.data import write_penguins_csv  # noqa: E402

TEST_IMAGE = "europe-docker.pkg.dev/test-project/quantgate/quantgate:test"
# Small but real: the compiled job is executed end to end in test_spec_runner.
TEST_PIPELINE_KWARGS = {"train_steps": 60, "eval_steps": 5}


@dataclass
class Compiled:
    """A compiled PipelineJob, the options it was compiled with and the pipeline object it came from."""

    options: runner.KubeflowOptions
    path: str
    job: spec_runner.PipelineJob
    pipeline: object


def local_options(home: str, data_root: str) -> runner.KubeflowOptions:
    """Options of a job that runs on this machine: local pipeline root and data, DirectRunner."""
    return runner.KubeflowOptions(
        pipeline_root=os.path.join(home, "pipeline_root"),
        data_root=data_root,
        image=TEST_IMAGE,
        output_dir=home,
        pipeline_kwargs=dict(TEST_PIPELINE_KWARGS),
    )


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    """The pipeline compiled for Kubeflow v2 (schema 2.1) with a local pipeline root and the penguin CSV."""
    home = str(tmp_path_factory.mktemp("kubeflow"))
    options = local_options(home, os.path.dirname(write_penguins_csv(os.path.join(home, "data"))))
    path = runner.compile_pipeline(options)
    return Compiled(options, path, spec_runner.PipelineJob.load(path), runner.build_pipeline(options))
