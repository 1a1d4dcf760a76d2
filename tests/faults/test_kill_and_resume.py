"""kill -9 in each component, then a re-run: it re-executes only what did not complete and pushes one version.

All facts come from the session fixture ``resumed`` (tests/faults/conftest.py): one home, killed by SIGKILL to
the run's process group while each of ``KILL_TARGETS`` was RUNNING in MLMD (the pusher: right after its version
was renamed into place), resumed after each kill, run to completion, then run once more.
"""

from __future__ import annotations

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from quantgate.components.quantized_model_pusher import publish
from quantgate.components.shared import properties
from quantgate.pipelines import lineage
from tests.faults.conftest import COMPONENTS, KILL_TARGETS, PUSHER, ResumedHome, has_complete, new_executions

COMPLETE, CACHED = pb.Execution.COMPLETE, pb.Execution.CACHED


@pytest.mark.parametrize("index", range(len(KILL_TARGETS)), ids=KILL_TARGETS)
def test_killed_execution_is_left_unfinished(resumed: ResumedHome, index: int) -> None:
    step = resumed.steps[index]
    states = dict(step.after_kill[step.component])
    assert states[step.killed_execution_id] not in (COMPLETE, CACHED)
    # Still not complete after the re-run: MLMD keeps what happened, the re-run makes a new execution.
    assert dict(resumed.rerun[step.component])[step.killed_execution_id] not in (COMPLETE, CACHED)


@pytest.mark.parametrize("index", range(len(KILL_TARGETS)), ids=KILL_TARGETS)
def test_rerun_after_a_kill_reexecutes_only_the_unfinished(resumed: ResumedHome, index: int) -> None:
    step = resumed.steps[index]
    before, after = resumed.before_next(index), resumed.after(index)
    # The killed component ran again, to completion, exactly once.
    assert [state for _, state in new_executions(before, after, step.component)] == [COMPLETE]
    for component in COMPONENTS:
        if component != step.component and has_complete(before, component):
            # Finished before the kill: reused from the cache, never executed again.
            assert [s for _, s in new_executions(before, after, component)] == [CACHED], component


def test_resumed_run_pushes_one_complete_version(resumed: ResumedHome) -> None:
    assert resumed.resume_exit == 0
    versions, leftovers = resumed.resumed_versions
    assert leftovers == []  # no .staging-* folder
    killed_in_pusher = resumed.steps[KILL_TARGETS.index(PUSHER)]
    # The version the killed pusher had renamed into place is the one the resumed run reports, not a second one.
    assert versions == killed_in_pusher.versions_after_kill and len(versions) == 1
    store = lineage.open_sqlite_store(resumed.paths.metadata_path, read_only=True)
    ((pusher_id, _),) = new_executions(resumed.before_resume, resumed.resumed, PUSHER)
    (pushed,) = lineage.output_artifacts(store, pusher_id)[properties.PUSHED_MODEL_KEY]
    assert pushed.custom_properties[properties.PUSHED].int_value == 1
    assert pushed.custom_properties[properties.PUSHED_VERSION].string_value == versions[0]
    manifest = publish.read_manifest(f"{resumed.paths.serving_model_dir}/{versions[0]}")
    model = lineage.input_artifacts(store, pusher_id)[properties.MODEL_KEY][0]
    assert manifest["push_key"]["model_id"] == model.id
    assert manifest["sha256"] == model.custom_properties[properties.SHA256].string_value


def test_second_run_is_all_cached_and_pushes_nothing_new(resumed: ResumedHome) -> None:
    assert resumed.rerun_exit == 0
    for component in COMPONENTS:
        assert [s for _, s in new_executions(resumed.resumed, resumed.rerun, component)] == [CACHED], component
    assert resumed.rerun_versions == resumed.resumed_versions
