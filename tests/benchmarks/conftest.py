"""The penguin run the benchmarks read (``quantgate run --pipeline penguin`` first, into ``out/demo``): its artifacts'
URIs from its MLMD store."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from quantgate.pipelines import lineage
from quantgate.pipelines.kinds import PIPELINES
from quantgate.pipelines.local_runner import LocalRunPaths

PENGUIN = PIPELINES["penguin"]
DEMO = LocalRunPaths(home=os.path.abspath(PENGUIN.home), pipeline_name=PENGUIN.pipeline_name)


@pytest.fixture(scope="session")
def demo_output_uri() -> Callable[[str, str], str]:
    """``uri(component, key)``: the URI of the latest complete execution's output; skips without a demo run."""
    if not os.path.exists(DEMO.metadata_path):
        pytest.skip(f"no demo run at {DEMO.home}: run `quantgate run --pipeline penguin` first")
    store = lineage.open_sqlite_store(DEMO.metadata_path, read_only=True)

    def uri(component: str, key: str) -> str:
        execution = lineage.latest_complete_execution(store, DEMO.pipeline_name, component)
        assert execution is not None, f"the demo run has no {component}: run `quantgate run --pipeline penguin`"
        return lineage.output_artifacts(store, execution.id)[key][0].uri

    return uri
