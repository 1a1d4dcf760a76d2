"""pipelines/kinds.py: the pipelines by name, as the local runner and the Kubeflow runner resolve them (no run)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from quantgate.pipelines import kinds
from quantgate.pipelines.local_runner import LocalRunPaths, direct_runner_args


@pytest.mark.parametrize("name", sorted(kinds.PIPELINES))
def test_each_kind_builds_its_pipeline_with_what_the_local_runner_passes(name: str, tmp_path) -> None:
    kind = kinds.pipeline_kind(name)
    paths = LocalRunPaths(home=str(tmp_path), pipeline_name=kind.pipeline_name)
    csv = kind.data_writer(paths.data_root)
    assert os.path.dirname(csv) == paths.data_root and os.path.getsize(csv) > 0
    pipeline = kind.factory(pipeline_name=paths.pipeline_name, pipeline_root=paths.pipeline_root,
                            data_root=paths.data_root, beam_pipeline_args=direct_runner_args(),
                            metadata_connection_config=None, enable_cache=True,
                            **({"push_destination": paths.serving_model_dir} if kind.pushes else {}))
    ids = {c.id for c in pipeline.components}
    assert ("Transform" in ids) == (kind.transform_preprocessing_fn is not None)
    assert ("QuantizedModelPusher" in ids) == kind.pushes
    assert pipeline.pipeline_info.pipeline_name == kind.pipeline_name


def test_the_image_paths_of_the_modules_import() -> None:
    from tfx.utils import import_utils

    for kind in kinds.PIPELINES.values():
        for path in filter(None, (kind.trainer_run_fn, kind.transform_preprocessing_fn)):
            module, _, function = path.rpartition(".")
            assert callable(import_utils.import_func_from_module(module, function)), path


def test_an_unknown_pipeline_names_the_known_ones() -> None:
    names = sorted(kinds.PIPELINES)
    with pytest.raises(ValueError, match=f"unknown pipeline 'cats': choose one of {', '.join(names)}"):
        kinds.pipeline_kind("cats")
    result = subprocess.run([sys.executable, "-m", "quantgate", "run", "--pipeline", "cats"],
                            capture_output=True, text=True, timeout=120)
    choices = ", ".join(repr(name) for name in names)
    assert result.returncode == 2 and f"invalid choice: 'cats' (choose from {choices})" in result.stderr
