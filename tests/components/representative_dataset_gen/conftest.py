"""Fixtures for RepresentativeDatasetGen's tests: the demo run's Examples (small ones: ../conftest.py)."""

from __future__ import annotations

import pytest
from tfx.types import Artifact, standard_artifacts


@pytest.fixture
def demo_examples(demo_run) -> Artifact:
    """The demo run's CsvExampleGen output as a TFX Artifact (what an executor receives)."""
    artifact = standard_artifacts.Examples()
    artifact.set_mlmd_artifact(demo_run.output("CsvExampleGen", "examples"))
    return artifact
