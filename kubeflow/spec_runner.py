"""Runs a compiled PipelineJob (from ``kubeflow/runner.py``) task by task on this machine, the way Vertex AI would.

Each container task becomes the process its pod would run: the compiled command (``python -m
tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor``, or the ExampleGen driver for a
``preCacheCheck`` hook first) with the compiled args, ``{{$}}`` replaced by an ExecutorInput JSON built from the spec:
constant parameters, upstream artifacts as the producers' executor output files describe them (URI, metadata,
name), output URIs under ``<pipeline root>/<job id>/<task>/<key>``. Importer tasks are resolved from their spec.
Resolver tasks need the platform's MLMD, which is not here: they resolve to nothing, as on a first run, and say so.

``python kubeflow/spec_runner.py PIPELINE_JSON --pipeline-root DIR`` runs a whole job; ``build_executor_input`` and
``run_task`` run one task on artifacts from anywhere (e.g. a local run, see ``runtime_artifact_from_mlmd``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import graphlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from runner import URI_RE, absolute_location  # a sibling entry point (kubeflow/ is on sys.path)

# One Keras for the executors, as the image's ENV sets it.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"
EXECUTOR_OUTPUT_FILENAME = "executor_output.json"
LOG_FILENAME = "container.log"
# Prefix of the artifact names this runner makes up; Vertex uses projects/.../metadataStores/default/artifacts/<id>.
ARTIFACT_NAME_PREFIX = "local"

RuntimeArtifact = dict[str, Any]
# (producer task, output key) -> the artifacts it produced, in ExecutorInput JSON form.
InputResolver = Callable[[str, str], list[RuntimeArtifact]]


class SpecRunError(RuntimeError):
    """A task of the compiled spec could not be run; the message names the task and what to look at."""


@dataclasses.dataclass(frozen=True)
class Task:
    """One task of the root DAG with its component definition and executor (deployment) spec."""

    name: str
    spec: dict[str, Any]
    component: dict[str, Any]
    executor: dict[str, Any]

    @property
    def dependencies(self) -> list[str]:
        return list(self.spec.get("dependentTasks", []))

    @property
    def kind(self) -> str:
        """``container``, ``importer`` or ``resolver``."""
        (kind,) = self.executor.keys()
        return kind

    @property
    def container(self) -> dict[str, Any]:
        return self.executor.get("container", {})

    @property
    def executor_class_path(self) -> str | None:
        args = self.container.get("args", [])
        return args[args.index("--executor_class_path") + 1] if "--executor_class_path" in args else None

    @property
    def output_types(self) -> dict[str, dict[str, Any]]:
        """Output key -> artifact type schema (``instanceSchema`` / ``schemaTitle``)."""
        artifacts = self.component.get("outputDefinitions", {}).get("artifacts", {})
        return {key: definition["artifactType"] for key, definition in artifacts.items()}

    @property
    def input_types(self) -> dict[str, dict[str, Any]]:
        artifacts = self.component.get("inputDefinitions", {}).get("artifacts", {})
        return {key: definition["artifactType"] for key, definition in artifacts.items()}


@dataclasses.dataclass(frozen=True)
class PipelineJob:
    """A compiled PipelineJob JSON (``KubeflowV2DagRunner``'s output) and the tasks of its root DAG."""

    job: dict[str, Any]

    @classmethod
    def load(cls, path: str) -> PipelineJob:
        with open(path) as f:
            return cls(json.load(f))

    @property
    def spec(self) -> dict[str, Any]:
        return self.job["pipelineSpec"]

    @property
    def name(self) -> str:
        return self.spec["pipelineInfo"]["name"]

    @property
    def uses_parameter_values(self) -> bool:
        """Schema 2.1 passes parameters as ``parameterValues`` (struct values), 2.0 as typed ``parameters``."""
        return self.spec.get("schemaVersion", "2.0.0") >= "2.1.0"

    @functools.cached_property
    def tasks(self) -> dict[str, Task]:
        dag = self.spec["root"]["dag"]
        executors = self.spec["deploymentSpec"]["executors"]
        tasks = {}
        for name, task in dag["tasks"].items():
            component = self.spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                raise SpecRunError(f"task {name}: nested DAGs (exit handlers, conditions) are not supported here")
            tasks[name] = Task(name, task, component, executors[component["executorLabel"]])
        return tasks

    def order(self) -> list[str]:
        """Task names in dependency order (``dependentTasks`` plus the producers of every input artifact)."""
        sorter = graphlib.TopologicalSorter()
        for name, task in self.tasks.items():
            producers = {ref["taskOutputArtifact"]["producerTask"]
                         for ref in task.spec.get("inputs", {}).get("artifacts", {}).values()
                         if "taskOutputArtifact" in ref}
            sorter.add(name, *task.dependencies, *producers)
        return list(sorter.static_order())

    def runtime_parameter(self, name: str) -> Any:
        """A pipeline-level parameter's value from ``runtimeConfig`` (or its default in the root definitions)."""
        config = self.job.get("runtimeConfig", {})
        for field in ("parameterValues", "parameters"):
            if name in config.get(field, {}):
                return config[field][name]
        definition = self.spec["root"].get("inputDefinitions", {}).get("parameters", {}).get(name, {})
        if "defaultValue" in definition:
            return definition["defaultValue"]
        raise SpecRunError(f"pipeline parameter {name!r} has no value in runtimeConfig and no default: "
                           "set it in the PipelineJob's runtimeConfig")


def job_locations(job: PipelineJob) -> dict[str, str]:
    """Where the compiled job reads and writes: the pipeline root, every ``input_base`` (ExampleGen's data) and every
    ``push_destination``'s filesystem ``base_directory``, keyed by where they sit in the spec."""
    locations = {}
    root = job.job.get("runtimeConfig", {}).get("gcsOutputDirectory")
    if root:
        locations["runtimeConfig.gcsOutputDirectory"] = root
    for name, task in job.tasks.items():
        for key, source in task.spec.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" not in source:
                continue
            value = constant_value(source)
            if key == "input_base" and isinstance(value, str):
                locations[f"{name}.input_base"] = value
            elif key == "push_destination":
                destination = json.loads(value) if isinstance(value, str) else value
                base = destination.get("filesystem", {}).get("base_directory")
                if base:
                    locations[f"{name}.push_destination.filesystem.base_directory"] = base
    return locations


def relative_locations(job: PipelineJob) -> dict[str, str]:
    """The job's local locations that are not absolute: every task runs from its own folder, so they would not be
    found (CsvExampleGen: ``Split pattern ... does not match any files``)."""
    return {where: value for where, value in job_locations(job).items()
            if not URI_RE.match(value) and not os.path.isabs(value)}


def constant_value(source: dict[str, Any]) -> Any:
    """The plain value of a task parameter's ``runtimeValue`` (2.1: ``constant``; 2.0: typed ``constantValue``)."""
    runtime = source["runtimeValue"]
    if "constant" in runtime:
        return runtime["constant"]
    ((kind, value),) = runtime["constantValue"].items()
    return int(value) if kind == "intValue" else value  # JSON carries int64 as a string


def _parameters(job: PipelineJob, task: Task) -> tuple[str, dict[str, Any]]:
    """The ExecutorInput field (``parameterValues`` or ``parameters``) and the task's parameter values for it."""
    field = "parameterValues" if job.uses_parameter_values else "parameters"
    values = {}
    for key, source in task.spec.get("inputs", {}).get("parameters", {}).items():
        if "runtimeValue" in source:
            runtime = source["runtimeValue"]
            values[key] = runtime["constant"] if "constant" in runtime else runtime["constantValue"]
        elif "componentInputParameter" in source:
            values[key] = job.runtime_parameter(source["componentInputParameter"])
        else:
            raise SpecRunError(f"task {task.name}: parameter {key!r} comes from {sorted(source)}, which this runner "
                               "does not resolve (only constants and pipeline parameters)")
    return field, values


def build_executor_input(job: PipelineJob, task: Task, resolve_input: InputResolver, task_root: str,
                         job_id: str) -> dict[str, Any]:
    """The ExecutorInput (JSON form) the platform would hand ``task``: inputs resolved, outputs under ``task_root``."""
    artifacts = {}
    for key, ref in task.spec.get("inputs", {}).get("artifacts", {}).items():
        if "taskOutputArtifact" not in ref:
            raise SpecRunError(f"task {task.name}: input {key!r} is not another task's output ({sorted(ref)}); "
                               "pipeline-level input artifacts are not supported here")
        producer = ref["taskOutputArtifact"]
        resolved = resolve_input(producer["producerTask"], producer["outputArtifactKey"])
        if resolved:  # an unresolved optional input (e.g. no baseline model yet) is left out, as on Vertex
            artifacts[key] = {"artifacts": [{**artifact, "type": task.input_types[key]} for artifact in resolved]}
    field, parameters = _parameters(job, task)
    outputs = {
        key: {"artifacts": [{
            "name": f"{ARTIFACT_NAME_PREFIX}/{job_id}/{task.name}/{key}",
            "uri": os.path.join(task_root, key),
            "type": artifact_type,
            "metadata": {},
        }]}
        for key, artifact_type in task.output_types.items()
    }
    return {
        "inputs": {"artifacts": artifacts, field: parameters},
        "outputs": {"artifacts": outputs, "outputFile": os.path.join(task_root, EXECUTOR_OUTPUT_FILENAME)},
    }


def _run_process(task: Task, command: list[str], args: list[str], executor_input: dict[str, Any],
                 log_path: str) -> None:
    """Runs one container command with ``{{$}}`` filled in; the compiled ``python`` is this interpreter."""
    serialized = json.dumps(executor_input)
    argv = [sys.executable if part == "python" else part for part in command]
    argv += [serialized if arg == EXECUTOR_INPUT_PLACEHOLDER else arg for arg in args]
    started = time.monotonic()
    with open(log_path, "ab") as log:
        # cwd is the task folder, as in a pod: the code must import from the installed package, not the checkout.
        returncode = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=os.path.dirname(log_path),
                                    check=False).returncode
    if returncode != 0:
        with open(log_path, errors="replace") as log:
            tail = "".join(log.readlines()[-30:])
        raise SpecRunError(f"task {task.name}: `{' '.join(command)}` exited with {returncode} after "
                           f"{time.monotonic() - started:.1f} s; full log {log_path}, last lines:\n{tail}")


def read_executor_output(path: str) -> dict[str, Any]:
    """The ExecutorOutput JSON a container wrote (its artifacts carry custom properties as ``metadata``)."""
    if not os.path.exists(path):
        raise SpecRunError(f"no executor output file at {path}: the container did not finish its task")
    with open(path) as f:
        return json.load(f)


def run_task(task: Task, executor_input: dict[str, Any]) -> dict[str, list[RuntimeArtifact]]:
    """Runs a container task on ``executor_input``; returns its output artifacts as the executor output reports them.

    A ``preCacheCheck`` hook (file-based ExampleGen's driver) runs first; the platform then copies the artifact
    metadata it reports (span, version, fingerprint) onto the task's outputs before the executor runs.
    """
    if task.kind != "container":
        raise SpecRunError(f"task {task.name} is a {task.kind}, not a container task")
    output_file = executor_input["outputs"]["outputFile"]
    task_root = os.path.dirname(output_file)
    os.makedirs(task_root, exist_ok=True)
    log_path = os.path.join(task_root, LOG_FILENAME)
    if os.path.exists(output_file):  # the entrypoint would read a stale file as a driver's output
        os.remove(output_file)
    with open(os.path.join(task_root, "executor_input.json"), "w") as f:
        json.dump(executor_input, f, indent=1)
    hook = task.container.get("lifecycle", {}).get("preCacheCheck")
    if hook:
        _run_process(task, hook["command"], hook.get("args", []), executor_input, log_path)
        for key, reported in read_executor_output(output_file).get("artifacts", {}).items():
            for artifact, update in zip(executor_input["outputs"]["artifacts"][key]["artifacts"],
                                        reported["artifacts"], strict=True):
                artifact["metadata"] = {**artifact["metadata"], **update.get("metadata", {})}
    _run_process(task, task.container["command"], task.container["args"], executor_input, log_path)
    reported = read_executor_output(output_file).get("artifacts", {})
    outputs = {}
    for key, expected in executor_input["outputs"]["artifacts"].items():
        if key not in reported:
            raise SpecRunError(f"task {task.name}: the executor output {output_file} has no artifact {key!r}")
        # The executor output carries name, uri and metadata; the type is the output definition's.
        outputs[key] = [{**artifact, "type": expected["artifacts"][0]["type"]}
                        for artifact in reported[key]["artifacts"]]
    return outputs


def _importer_outputs(task: Task, job_id: str) -> dict[str, list[RuntimeArtifact]]:
    importer = task.executor["importer"]
    uri = importer["artifactUri"]
    value = uri.get("constant") or uri.get("constantValue", {}).get("stringValue")
    if not value:
        raise SpecRunError(f"task {task.name}: importer URI {uri} is not a constant")
    (key,) = task.output_types
    return {key: [{"name": f"{ARTIFACT_NAME_PREFIX}/{job_id}/{task.name}/{key}", "uri": value,
                   "metadata": importer.get("metadata", {}), "type": importer["typeSchema"]}]}


@dataclasses.dataclass
class TaskResult:
    """What one task did: its outputs as downstream tasks see them, where its files are, how long it took."""

    name: str
    kind: str
    outputs: dict[str, list[RuntimeArtifact]]
    task_root: str | None
    seconds: float
    skipped_reason: str | None = None


def run_pipeline_job(job: PipelineJob, pipeline_root: str, job_id: str | None = None) -> dict[str, TaskResult]:
    """Runs every task of ``job`` in dependency order under ``<pipeline_root>/<job_id>``; stops at the first failure.

    A relative local ``pipeline_root`` is made absolute; a job compiled with relative local paths is refused.
    """
    relative = relative_locations(job)
    if relative:
        listed = ", ".join(f"{where} = {value!r}" for where, value in sorted(relative.items()))
        raise SpecRunError(f"the compiled job holds relative local paths ({listed}), which each task would resolve "
                           "from its own folder: recompile with kubeflow/runner.py, which makes local paths "
                           "absolute, or pass absolute paths")
    pipeline_root = absolute_location(pipeline_root, "--pipeline-root")
    job_id = job_id or f"{job.name}-{time.strftime('%Y%m%d%H%M%S')}"
    results: dict[str, TaskResult] = {}
    tasks = job.tasks
    order = job.order()

    def resolve_input(producer: str, key: str) -> list[RuntimeArtifact]:
        return results[producer].outputs.get(key, [])

    started = time.monotonic()
    for index, name in enumerate(order, start=1):
        task = tasks[name]
        task_started = time.monotonic()
        if task.kind == "container":
            task_root = os.path.join(pipeline_root, job_id, name)
            executor_input = build_executor_input(job, task, resolve_input, task_root, job_id)
            results[name] = TaskResult(name, task.kind, run_task(task, executor_input), task_root, 0.0)
        elif task.kind == "importer":
            results[name] = TaskResult(name, task.kind, _importer_outputs(task, job_id), None, 0.0)
        else:
            reason = ("resolvers query the platform's ML Metadata, which a local spec run does not have: "
                      "resolved to no artifacts, as on a pipeline's first run")
            logging.warning("task %s (%s): %s", name, task.kind, reason)
            results[name] = TaskResult(name, task.kind, {}, None, 0.0, skipped_reason=reason)
        results[name].seconds = time.monotonic() - task_started
        logging.info("spec run %s: task %d/%d %s (%s) done in %.1f s; %.1f s elapsed", job_id, index, len(order),
                     name, task.executor_class_path or task.kind, results[name].seconds, time.monotonic() - started)
    return results


def runtime_artifact_from_mlmd(artifact: Any, artifact_type: Any, name: str | None = None) -> RuntimeArtifact:
    """An MLMD artifact (e.g. from a local run) as a container would receive it: uri, name, metadata.

    ``artifact`` / ``artifact_type`` are ``metadata_store_pb2.Artifact`` / ``ArtifactType``; ``build_executor_input``
    adds the ``type`` schema from the consuming task's input definition.
    """
    from google.protobuf import json_format
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
    from tfx.types import artifact_utils

    instance = artifact_utils.deserialize_artifact(artifact_type, artifact)
    name = name or f"{ARTIFACT_NAME_PREFIX}/mlmd/{artifact.id}"
    runtime = kubeflow_v2_entrypoint_utils.to_runtime_artifact(instance, {artifact.id: name})
    return json_format.MessageToDict(runtime)


def main(argv: list[str] | None = None) -> int:
    """CLI: run a compiled PipelineJob locally and print where each task's outputs are."""
    parser = argparse.ArgumentParser(prog="python kubeflow/spec_runner.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline_job", help="the compiled PipelineJob JSON (kubeflow/runner.py --output-dir)")
    parser.add_argument("--pipeline-root", required=True,
                        help="local folder (made absolute) or any URI the executors can write, for the tasks' "
                             "outputs")
    parser.add_argument("--job-id", help="folder name of this run under the pipeline root (default: name-timestamp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        results = run_pipeline_job(PipelineJob.load(args.pipeline_job), args.pipeline_root, args.job_id)
    except SpecRunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for result in results.values():
        for key, artifacts in result.outputs.items():
            for artifact in artifacts:
                print(f"{result.name}.{key}: {artifact['uri']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
