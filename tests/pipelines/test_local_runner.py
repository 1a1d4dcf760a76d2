"""The local runner's Beam args: TFX builds no throwaway sdist of itself for a local run's Beam components."""

from __future__ import annotations

import os
import tempfile

import pytest
from tfx.utils import dependency_utils

from quantgate.components.representative_dataset_gen.executor import Executor
from quantgate.pipelines.local_runner import beam_runner_label, direct_runner_args


@pytest.mark.parametrize(("num_workers", "running_mode"), [(1, "in_memory"), (2, "multi_processing")])
def test_tfx_adds_no_sdist_to_the_local_beam_args(num_workers: int, running_mode: str) -> None:
    args = direct_runner_args(num_workers, running_mode)
    assert dependency_utils.make_beam_dependency_flags(args) == args


def test_a_beam_executor_leaves_no_tfx_copy_in_the_temp_folder(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # TFX's sdist goes to tempfile.mkdtemp(): point that at a folder of our own and count what appears in it.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    Executor(Executor.Context(beam_pipeline_args=direct_runner_args(), tmp_dir=str(tmp_path / "unused")))
    assert os.listdir(tmp_path) == []
    # The control: the same args without the flag make TFX copy itself there (what every executor did before).
    plain = [arg for arg in direct_runner_args() if not arg.startswith("--requirements_file=")]
    Executor(Executor.Context(beam_pipeline_args=plain, tmp_dir=str(tmp_path / "unused")))
    (copy,) = os.listdir(tmp_path)
    assert os.path.isdir(os.path.join(tmp_path, copy, "build", "tfx", "tfx"))


def test_the_beam_runner_label_names_the_runner_and_a_portable_job_endpoint() -> None:
    assert beam_runner_label(direct_runner_args()) == "DirectRunner"
    assert beam_runner_label(["--runner=PortableRunner", "--job_endpoint=localhost:8099", "--parallelism=2"]) == (
        "PortableRunner (job endpoint localhost:8099)")
    assert beam_runner_label(["--project=p"]) == "DirectRunner"  # Beam's default when no runner is named
