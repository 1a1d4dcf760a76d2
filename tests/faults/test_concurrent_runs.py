"""Two runs at once on one home: one SQLite MLMD, one pipeline root, one push destination. Both must complete.

They start from the ``resumed`` baseline with calibration seeds of their own, so both really execute
RepresentativeDatasetGen, the Quantizer, the QuantizationEvaluator and the pusher at the same time (the
upstream components are cached) and race for the next version name of the same destination.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from quantgate.components.quantized_model_pusher import publish
from quantgate.components.shared import properties
from quantgate.pipelines import lineage
from tests.faults.conftest import (
    PUSHER,
    ResumedHome,
    new_executions,
    snapshot,
    start_run,
    versions_and_leftovers,
)

SEEDS = (1, 2)


@pytest.fixture(scope="module")
def concurrent(resumed: ResumedHome) -> dict:
    paths = resumed.paths
    before = snapshot(paths)
    runs = [start_run(paths, f"concurrent-seed-{seed}", calibration_seed=seed) for seed in SEEDS]
    exits = [run.wait() for run in runs]
    return {"before": before, "after": snapshot(paths), "exits": exits, "runs": runs,
            "versions": versions_and_leftovers(paths.serving_model_dir), "baseline": resumed.rerun_versions[0]}


def test_both_runs_complete(concurrent: dict) -> None:
    for run, code in zip(concurrent["runs"], concurrent["exits"], strict=True):
        assert code == 0, f"{run.log_path} exited {code}:\n{run.log_tail()}"


def test_each_run_pushed_its_own_complete_version(resumed: ResumedHome, concurrent: dict) -> None:
    store = lineage.open_sqlite_store(resumed.paths.metadata_path, read_only=True)
    pushers = new_executions(concurrent["before"], concurrent["after"], PUSHER)
    assert [state for _, state in pushers] == [pb.Execution.COMPLETE] * len(SEEDS)
    versions, leftovers = concurrent["versions"]
    assert leftovers == []
    pushed_versions = set()
    seeds = set()
    for execution_id, _ in pushers:
        (pushed,) = lineage.output_artifacts(store, execution_id)[properties.PUSHED_MODEL_KEY]
        version = pushed.custom_properties[properties.PUSHED_VERSION].string_value
        pushed_versions.add(version)
        # Lineage intact: the chain behind each push reaches the calibration sample of its own run.
        chain = {link["role"]: link for link in lineage.pushed_chain(store, pushed.id)["chain"]}
        seeds.add(chain["representative dataset"]["artifact"]["properties"][properties.SEED])
        manifest = publish.read_manifest(f"{resumed.paths.serving_model_dir}/{version}")
        assert manifest["sha256"] == chain["quantized model"]["artifact"]["properties"][properties.SHA256]
    assert seeds == set(SEEDS)
    assert sorted(pushed_versions | set(concurrent["baseline"]), key=int) == versions
    assert len(versions) == len(concurrent["baseline"]) + len(SEEDS)


def test_lineage_cli_answers_on_the_shared_store(resumed: ResumedHome, concurrent: dict) -> None:
    result = subprocess.run([sys.executable, "-m", "quantgate", "lineage", "--metadata",
                             resumed.paths.metadata_path, "--pushed", "latest"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "representative dataset" in result.stdout and "pushed=1" in result.stdout
