"""The demo run the benchmarks read (``make demo`` first): its artifacts' URIs from its MLMD store."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from quantgate.pipelines import lineage
from quantgate.pipelines.local_runner import LocalRunPaths

DEMO = LocalRunPaths(home=os.path.abspath("out/demo"))


@pytest.fixture(scope="session")
def demo_output_uri() -> Callable[[str, str], str]:
    """``uri(component, key)``: the URI of the latest complete execution's output; skips without a demo run."""
    if not os.path.exists(DEMO.metadata_path):
        pytest.skip(f"no demo run at {DEMO.home}: run `make demo` first")
    store = lineage.open_sqlite_store(DEMO.metadata_path, read_only=True)

    def uri(component: str, key: str) -> str:
        execution = lineage.latest_complete_execution(store, DEMO.pipeline_name, component)
        assert execution is not None, f"the demo run has no {component}: run `make demo`"
        return lineage.output_artifacts(store, execution.id)[key][0].uri

    return uri
