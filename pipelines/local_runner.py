"""Runs a pipeline of ``pipelines.kinds`` (penguin, taxi) locally: LocalDagRunner, SQLite MLMD under the pipeline
root, Beam DirectRunner."""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass, field

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base.executor_spec import BeamExecutorSpec

from quantgate.components import Quantizer
from quantgate.components.quantizer import isolation
from quantgate.components.shared import properties
from quantgate.pipelines.config import with_dotted_configs
from quantgate.pipelines.kinds import DEFAULT_PIPELINE, PIPELINES, pipeline_kind
from quantgate.pipelines.lineage.events import NODE_CONTEXT_TYPE

DEFAULT_PIPELINE_NAME = PIPELINES[DEFAULT_PIPELINE].pipeline_name
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class LocalRunPaths:
    """Where a local run keeps its data, artifacts and ML Metadata."""

    home: str
    pipeline_name: str = DEFAULT_PIPELINE_NAME

    @property
    def data_root(self) -> str:
        return os.path.join(self.home, "data")

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.home, "pipeline_root")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.pipeline_root, "metadata.sqlite")

    @property
    def serving_model_dir(self) -> str:
        return os.path.join(self.home, "serving_model")


def without_tfx_sdist(beam_args: list[str]) -> list[str]:
    """``beam_args`` plus ``--requirements_file`` (the lock), so that TFX builds no throwaway sdist of itself.

    Every Beam component's executor, when constructed with Beam args, copies the installed tfx into a fresh temp
    folder and builds a source package of it for remote workers (``tfx.utils.dependency_utils``: ~1.3 s and ~52 MB
    left behind each time), unless the args already name the workers' dependencies (``--extra_packages``,
    ``--setup_file``, ``--requirements_file``, ``--sdk_container_image``...). A local run's workers are this
    interpreter or its subprocesses (DirectRunner ``multi_processing``), which inherit its environment and import
    path: nothing is staged, and the DirectRunner reads none of these flags. The lock is what they run on.
    """
    return [*beam_args, f"--requirements_file={os.path.join(REPO_ROOT, 'requirements', 'requirements.lock')}"]


def direct_runner_args(num_workers: int = 1, running_mode: str = "in_memory") -> list[str]:
    """Beam DirectRunner args; ``running_mode='multi_processing'`` with ``num_workers`` > 1 runs workers in processes.

    With ``without_tfx_sdist``'s flag: a DirectRunner stages nothing.
    """
    if num_workers < 1:
        raise ValueError(f"direct_num_workers must be >= 1, got {num_workers}")
    if running_mode not in ("in_memory", "multi_threading", "multi_processing"):
        raise ValueError(f"direct_running_mode must be in_memory, multi_threading or multi_processing, got {running_mode!r}")
    return without_tfx_sdist(
        ["--runner=DirectRunner", f"--direct_num_workers={num_workers}", f"--direct_running_mode={running_mode}"])


def beam_runner_label(beam_args: list[str]) -> str:
    """The runner ``beam_args`` name, with the job endpoint of a portable runner (Flink's job server)."""
    flags = dict(arg[2:].split("=", 1) for arg in beam_args if arg.startswith("--") and "=" in arg)
    runner = flags.get("runner", "DirectRunner")
    return f"{runner} (job endpoint {flags['job_endpoint']})" if "job_endpoint" in flags else runner


@dataclass
class LocalRunConfig:
    """Knobs of a local run of ``pipeline`` (a ``pipelines.kinds`` name); ``pipeline_kwargs`` go to its factory
    (``create_pipeline``, ``create_taxi_pipeline``), their ``quantize.<field>`` / ``gate.<field>`` keys (JSON-shaped
    values) folded into its ``quantize`` / ``gate`` configs first (``pipelines.config.with_dotted_configs``).

    ``metadata_connection_config`` overrides the SQLite file under the pipeline root, e.g. with a MySQL store
    (``tfx.orchestration.metadata.mysql_metadata_connection_config``).
    """

    paths: LocalRunPaths
    pipeline: str = DEFAULT_PIPELINE
    num_workers: int = 1
    running_mode: str = "in_memory"
    enable_cache: bool = True
    pipeline_kwargs: dict = field(default_factory=dict)
    # Beam args for every Beam component instead of the DirectRunner's (num_workers and running_mode then do not
    # apply): a portable runner's, e.g. ``flink.flink_session``'s, or any set by hand.
    beam_args: list[str] | None = None
    # repr=False: a MySQL connection config holds the password.
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = field(default=None, repr=False)


class DiskFullError(Exception):
    """The disk under the pipeline root or MLMD filled up during a run: a one-line message."""


# What MLMD's SQLite layer raises (a RuntimeError, with the SQL statement after it) when the disk is full.
_SQLITE_FULL = "database or disk is full"


def disk_full_error(error: BaseException, paths: LocalRunPaths) -> DiskFullError | None:
    """A ``DiskFullError`` naming where the disk is full, when ``error`` (or what caused it) is ENOSPC or SQLite's
    "database or disk is full"; ``None`` for any other error."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        where = None
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            where = error.filename or paths.pipeline_root
        elif isinstance(error, RuntimeError) and _SQLITE_FULL in str(error):
            where = paths.metadata_path
        if where is not None:
            return DiskFullError(f"disk full at {where}: free space and re-run (finished components are cached)")
        error = error.__cause__ or error.__context__
    return None


def record_failure(connection_config: metadata_store_pb2.ConnectionConfig, pipeline_name: str, since_ms: int,
                   error: BaseException) -> None:
    """Writes ``error`` (one line) as ``failure_reason`` on the pipeline's executions that FAILED since ``since_ms``.

    TFX marks an execution FAILED when its executor raises but keeps no message; the lineage CLI's ``--why-not``
    reads this one. Best effort: a store that cannot be written (a full disk) leaves the executions as they are.
    """
    reason = " ".join(f"{type(error).__name__}: {error}".split())[:2000]
    try:
        store = metadata_store.MetadataStore(connection_config)
        failed = []
        for context in store.get_contexts_by_type(NODE_CONTEXT_TYPE):
            if not context.name.startswith(f"{pipeline_name}."):
                continue
            failed += [e for e in store.get_executions_by_context(context.id)
                       if e.last_known_state == metadata_store_pb2.Execution.FAILED
                       and e.create_time_since_epoch >= since_ms
                       and properties.FAILURE_REASON not in e.custom_properties]
        for execution in failed:
            execution.custom_properties[properties.FAILURE_REASON].string_value = reason
        if failed:
            store.put_executions(failed)
    except Exception as record_error:  # the run's own error is what the caller must see
        logging.warning("could not record the failure in MLMD: %s", record_error)


def run_local(config: LocalRunConfig) -> None:
    """Writes the pipeline's CSV into the data root and runs the whole pipeline with LocalDagRunner.

    A full disk (ENOSPC, or SQLite's "database or disk is full" from MLMD) is a ``DiskFullError``; any other
    failure is recorded on the execution that failed (``record_failure``) and re-raised."""
    metadata_connection_config = config.metadata_connection_config
    if metadata_connection_config is None:
        metadata_connection_config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.paths.metadata_path)
    started_ms = int(time.time() * 1000)
    try:
        _run_local(config, metadata_connection_config)
    except Exception as error:  # the launcher may re-raise an executor's error wrapped: look down the chain
        full = disk_full_error(error, config.paths)
        if full is not None:
            raise full from error
        record_failure(metadata_connection_config, config.paths.pipeline_name, started_ms, error)
        raise


def _run_local(config: LocalRunConfig, metadata_connection_config: metadata_store_pb2.ConnectionConfig) -> None:
    paths = config.paths
    kind = pipeline_kind(config.pipeline)
    kind.data_writer(paths.data_root)
    beam_args = (config.beam_args if config.beam_args is not None
                 else direct_runner_args(config.num_workers, config.running_mode))
    pipeline = kind.factory(
        pipeline_name=paths.pipeline_name,
        pipeline_root=paths.pipeline_root,
        data_root=paths.data_root,
        beam_pipeline_args=beam_args,
        metadata_connection_config=metadata_connection_config,
        enable_cache=config.enable_cache,
        # pipeline_kwargs win: a caller may push elsewhere (the faults tests push to full or read-only mounts).
        **{**({"push_destination": paths.serving_model_dir} if kind.pushes else {}),
           **with_dotted_configs(config.pipeline_kwargs, kind.default_configs)},
    )
    logging.info("running %s in %s", paths.pipeline_name, paths.pipeline_root)
    logging.info("%s runs the Beam components: %s", beam_runner_label(beam_args),
                 ", ".join(c.id for c in pipeline.components if isinstance(c.executor_spec, BeamExecutorSpec)))
    if any(isinstance(component, Quantizer) for component in pipeline.components):
        # The conversion child's server imports TensorFlow while the components before the Quantizer run.
        isolation.warm_up()
    tfx.orchestration.LocalDagRunner().run(pipeline)
