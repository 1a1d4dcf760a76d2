"""Real pipeline runs in child processes, killed with real signals, and what ML Metadata says afterwards.

Each run is ``run_local`` in a child process of its own session (``start_new_session``), so one ``killpg`` with
SIGKILL takes the Quantizer's conversion child and Beam's workers down too, as a crash or an OOM kill would.
The session fixture ``resumed`` is the baseline every fault test starts from: one home, killed once in each of
``KILL_TARGETS`` in turn, resumed after each kill, run to completion, then run once more.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from quantgate.components.quantized_model_pusher import publish
from quantgate.components.shared.staged_output import STAGING_DIRNAME
from quantgate.pipelines import lineage
from quantgate.pipelines.kinds import PIPELINES
from quantgate.pipelines.local_runner import LocalRunPaths

# Small but blessed: few steps, and a delta budget the few-step model passes every time.
# One candidate (int8): the faults are about the run, not the comparison, and each extra Quantizer costs seconds.
FAULT_PIPELINE_KWARGS = {"train_steps": 100, "eval_steps": 5, "gate.max_delta": 0.1,
                         "quantize.candidate_modes": []}
# In the order LocalDagRunner runs them (topological layers, each sorted by id).
COMPONENTS = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "RepresentativeDatasetGen", "Trainer", "Evaluator",
              "Quantizer", "QuantizationEvaluator", "QuantizedModelPusher")
PUSHER = "QuantizedModelPusher"
# In run order: each kill lands after the previous target has completed in the resumed run.
KILL_TARGETS = ("RepresentativeDatasetGen", "Trainer", "Quantizer", "QuantizationEvaluator", PUSHER)
RUN_TIMEOUT_S = 900.0

PENGUIN_PIPELINE_NAME = PIPELINES["penguin"].pipeline_name
_RUN_SCRIPT = """
import json, logging, sys
from quantgate.pipelines.kinds import PIPELINES
from quantgate.pipelines.local_runner import LocalRunConfig, LocalRunPaths, run_local
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                    force=True)  # TF installs a WARNING handler on import
run_local(LocalRunConfig(paths=LocalRunPaths(home=sys.argv[1], pipeline_name=PIPELINES["penguin"].pipeline_name),
                         pipeline="penguin",
                         pipeline_kwargs=json.loads(sys.argv[2])))
"""

Snapshot = dict[str, list[tuple[int, int]]]  # component -> [(execution id, state)], oldest first


@dataclass
class PipelineProcess:
    """One ``run_local`` in a child process group; its output goes to ``log_path``."""

    process: subprocess.Popen
    log_path: str

    def log_tail(self, lines: int = 40) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        assert self.process.wait(timeout=60) == -signal.SIGKILL


def start_run(paths: LocalRunPaths, name: str, **overrides: object) -> PipelineProcess:
    log_dir = os.path.join(paths.home, "logs")
    os.makedirs(log_dir, exist_ok=True)
    log_path = os.path.join(log_dir, f"{name}.log")
    kwargs = {**FAULT_PIPELINE_KWARGS, **overrides}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-c", _RUN_SCRIPT, paths.home, json.dumps(kwargs)],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    return PipelineProcess(process, log_path)


def run_to_end(paths: LocalRunPaths, name: str, **overrides: object) -> PipelineProcess:
    run = start_run(paths, name, **overrides)
    run.wait()
    return run


def snapshot(paths: LocalRunPaths) -> Snapshot:
    """Every execution of every component, read from the run's SQLite MLMD (read-only)."""
    if not os.path.exists(paths.metadata_path):
        return {c: [] for c in COMPONENTS}
    store = lineage.open_sqlite_store(paths.metadata_path, read_only=True)
    result: Snapshot = {}
    for component in COMPONENTS:
        context = store.get_context_by_type_and_name(lineage.NODE_CONTEXT_TYPE,
                                                     f"{paths.pipeline_name}.{component}")
        executions = store.get_executions_by_context(context.id) if context is not None else []
        result[component] = sorted((e.id, e.last_known_state) for e in executions)
    return result


def new_executions(before: Snapshot, after: Snapshot, component: str) -> list[tuple[int, int]]:
    known = {execution_id for execution_id, _ in before[component]}
    return [e for e in after[component] if e[0] not in known]


def has_complete(snap: Snapshot, component: str) -> bool:
    return any(state == pb.Execution.COMPLETE for _, state in snap[component])


def wait_until(run: PipelineProcess, condition: Callable[[], bool], what: str, interval_s: float,
               timeout_s: float = RUN_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - the store may be mid-creation or locked for a moment; ask again
            pass
        if run.process.poll() is not None:
            raise AssertionError(f"the run ended (exit {run.process.returncode}) before {what}:\n{run.log_tail()}")
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting until {what}:\n{run.log_tail()}")


def versions_and_leftovers(base_dir: str) -> tuple[list[str], list[str]]:
    """The published versions of a push destination, and every other entry (staging folders, strays)."""
    if not os.path.isdir(base_dir):
        return [], []
    versions = publish.published_versions(base_dir)
    return versions, sorted(n for n in os.listdir(base_dir) if n not in versions)


@dataclass
class KillStep:
    """One run killed while ``component`` was running: the executions before its start and after the kill."""

    component: str
    before: Snapshot
    after_kill: Snapshot
    killed_execution_id: int
    versions_after_kill: list[str]


@dataclass
class ResumedHome:
    """The baseline: killed in each of ``KILL_TARGETS`` in turn, resumed to completion, then run once more."""

    paths: LocalRunPaths
    steps: list[KillStep]
    before_resume: Snapshot
    resumed: Snapshot
    resume_exit: int
    resumed_versions: tuple[list[str], list[str]]
    rerun: Snapshot
    rerun_exit: int
    rerun_versions: tuple[list[str], list[str]]
    timings_s: dict[str, float] = field(default_factory=dict)

    def after(self, index: int) -> Snapshot:
        """What the run after kill ``index`` left: the next kill's snapshot, or the completed resume's."""
        return self.steps[index + 1].after_kill if index + 1 < len(self.steps) else self.resumed

    def before_next(self, index: int) -> Snapshot:
        return self.steps[index + 1].before if index + 1 < len(self.steps) else self.before_resume


def _running_execution(paths: LocalRunPaths, before: Snapshot, component: str) -> int | None:
    running = [i for i, state in new_executions(before, snapshot(paths), component) if state == pb.Execution.RUNNING]
    return running[0] if running else None


def _kill_in(paths: LocalRunPaths, component: str) -> KillStep:
    before = snapshot(paths)
    run = start_run(paths, f"kill-{component}")
    try:
        if component == PUSHER:
            # The worst moment for the pusher: its version is renamed into place, MLMD does not know yet.
            wait_until(run, lambda: bool(publish.published_versions(paths.serving_model_dir)),
                       "a version appeared in the push destination", interval_s=0.001)
        elif component == "RepresentativeDatasetGen":
            # On the demo's few hundred rows it is RUNNING for too short a time to catch in MLMD reliably; its
            # executor's staging folder exists only while it samples (registered RUNNING, not yet published).
            staging = os.path.join(paths.pipeline_root, component, "*", "*", STAGING_DIRNAME)
            wait_until(run, lambda: bool(glob.glob(staging)), f"{component} was sampling into {staging}",
                       interval_s=0.001)
        else:
            wait_until(run, lambda: _running_execution(paths, before, component) is not None,
                       f"{component} was RUNNING in MLMD", interval_s=0.2)
        run.kill()
    finally:
        if run.process.poll() is None:
            run.kill()
    after = snapshot(paths)
    killed = [i for i, _ in new_executions(before, after, component)]
    assert len(killed) == 1, f"expected one execution of {component} in the killed run, got {after[component]}"
    return KillStep(component, before, after, killed[0], publish.published_versions(paths.serving_model_dir))


@pytest.fixture(scope="session")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> ResumedHome:
    paths = LocalRunPaths(home=str(tmp_path_factory.mktemp("faults")), pipeline_name=PENGUIN_PIPELINE_NAME)
    timings: dict[str, float] = {}
    steps = []
    for component in KILL_TARGETS:
        started = time.monotonic()
        steps.append(_kill_in(paths, component))
        timings[f"kill-{component}"] = time.monotonic() - started
    before_resume = snapshot(paths)
    started = time.monotonic()
    resume = run_to_end(paths, "resume")
    timings["resume"] = time.monotonic() - started
    resumed_snap, resumed_versions = snapshot(paths), versions_and_leftovers(paths.serving_model_dir)
    started = time.monotonic()
    rerun = run_to_end(paths, "rerun")
    timings["rerun"] = time.monotonic() - started
    print(f"\nfault suite baseline timings (s): {json.dumps({k: round(v) for k, v in timings.items()})}")
    return ResumedHome(paths=paths, steps=steps, before_resume=before_resume, resumed=resumed_snap,
                       resume_exit=resume.process.returncode, resumed_versions=resumed_versions,
                       rerun=snapshot(paths), rerun_exit=rerun.process.returncode,
                       rerun_versions=versions_and_leftovers(paths.serving_model_dir), timings_s=timings)
