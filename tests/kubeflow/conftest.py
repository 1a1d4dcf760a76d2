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

from quantgate.pipelines.data import write_if_changed, write_penguins_csv  # noqa: E402
from quantgate.pipelines.taxi_data import CSV_NAME as TAXI_CSV_NAME  # noqa: E402
from quantgate.pipelines.taxi_data import taxi_csv_source  # noqa: E402

TEST_IMAGE = "europe-docker.pkg.dev/test-project/quantgate/quantgate:test"
# Small but real: the compiled job is executed end to end in test_spec_runner.
TEST_PIPELINE_KWARGS = {"train_steps": 60, "eval_steps": 5}
# The taxi job's tasks run one by one up to Transform (test_spec_runner): the CSV's first rows keep them short.
TAXI_TEST_ROWS = 2000
# Up to the float Evaluator: the quantgate components take transform_graph only once the component branches merge.
TAXI_PIPELINE_KWARGS = {"train_steps": 20, "eval_steps": 5}


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


def write_taxi_head(data_root: str, rows: int = TAXI_TEST_ROWS) -> str:
    """The taxi CSV's header and first ``rows`` rows as ``<data_root>/taxi.csv``; returns the data root."""
    with open(taxi_csv_source(), "rb") as f:
        head = b"".join(line for _, line in zip(range(rows + 1), f, strict=False))
    write_if_changed(os.path.join(data_root, TAXI_CSV_NAME), head)
    return data_root


@pytest.fixture(scope="session")
def taxi_compiled(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    """The taxi pipeline (Transform) compiled with a local pipeline root and the head of the taxi CSV."""
    home = str(tmp_path_factory.mktemp("kubeflow-taxi"))
    options = runner.KubeflowOptions.for_pipeline(
        "taxi", pipeline_root=os.path.join(home, "pipeline_root"),
        data_root=write_taxi_head(os.path.join(home, "data")), image=TEST_IMAGE, output_dir=home,
        pipeline_kwargs=dict(TAXI_PIPELINE_KWARGS))
    path = runner.compile_pipeline(options)
    return Compiled(options, path, spec_runner.PipelineJob.load(path), runner.build_pipeline(options))
