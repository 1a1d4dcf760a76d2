"""Compiles a quantgate pipeline for Kubeflow Pipelines v2 / Vertex AI into a PipelineJob JSON.

``python kubeflow/runner.py`` with no flags compiles the penguin pipeline (``DEFAULT_PIPELINE``) with
placeholder locations (``gs://your-bucket``, an Artifact Registry image of ``your-project``) into
``out/kubeflow/pipeline.json``; override them with the flags. ``--pipeline taxi`` compiles the Chicago taxi pipeline
(Transform) instead. ``--set`` sets the factory's parameters and, as ``quantize.<field>`` / ``gate.<field>``, the
fields of its ``QuantizeConfig`` / ``GateConfig`` (``pipelines/config.py``).
Compiling never touches the pipeline root: the Trainer imports its ``run_fn`` (and the taxi Transform its
``preprocessing_fn``) from the image instead of a wheel uploaded at compile time (pass ``--module-file`` for TFX's
wheel packaging). ML Metadata is the platform's.
Local paths (``--pipeline-root``, ``--data-root``, ``--module-file``, ``--set push_destination=...``) are made absolute
when compiling: every task runs from its own folder, where a relative path would point somewhere else.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import os
import re
import sys
import time
from typing import Any

from quantgate.pipelines import flink
from quantgate.pipelines.kinds import PIPELINES, PipelineKind, pipeline_kind

# Before anything imports TensorFlow: one Keras (tf_keras) for the compiler and the executors it imports.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Vertex AI's rule for pipeline names (KFP accepts the same): lowercase letters, digits, '-', at most 128.
PIPELINE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
# KubeflowV2DagRunner's rule for a custom artifact type's TYPE_NAME, which the container imports as module.Class.
CUSTOM_TYPE_NAME_RE = re.compile(r"^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$")

DEFAULT_PIPELINE_ROOT = "gs://your-bucket/quantgate/pipeline_root"
DEFAULT_IMAGE = "us-central1-docker.pkg.dev/your-project/quantgate/quantgate:latest"
DEFAULT_OUTPUT_DIR = os.path.join("out", "kubeflow")


def default_data_root(kind: PipelineKind) -> str:
    """The placeholder data root of a pipeline (``gs://your-bucket/quantgate/data/<pipeline>``)."""
    return f"gs://your-bucket/quantgate/data/{kind.name}"


# The penguin pipeline, not the local demo's default: its data is one small CSV to copy next to the pipeline root.
DEFAULT_PIPELINE = "penguin"
DEFAULT_PIPELINE_NAME = PIPELINES[DEFAULT_PIPELINE].pipeline_name
DEFAULT_DATA_ROOT = default_data_root(PIPELINES[DEFAULT_PIPELINE])
PENGUIN_RUN_FN = PIPELINES["penguin"].trainer_run_fn
BEAM_RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner")
# A location with a scheme (gs://, s3://, hdfs://, minio://, file://, ...) is left as it is; anything else is a local path.
URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# create_pipeline parameters (reachable with --set) that hold a location.
LOCATION_KWARGS = ("push_destination",)
# Factory parameters that have their own flag (or belong to the platform) and cannot be --set.
_RESERVED_KWARGS = frozenset({"pipeline_name", "pipeline_root", "data_root", "module_file", "trainer_run_fn",
                              "transform_module_file", "transform_preprocessing_fn", "beam_pipeline_args",
                              "metadata_connection_config", "enable_cache"})
# Factory parameters set field by field, as quantize.<field>=... / gate.<field>=... (pipelines/config.py).
_CONFIG_KWARGS = frozenset({"quantize", "gate"})


@dataclasses.dataclass
class KubeflowOptions:
    """Everything that goes into one compiled PipelineJob; ``pipeline_kwargs`` reach the pipeline's factory as is.

    The defaults are the penguin pipeline's; ``for_pipeline`` gives another pipeline's (name, data root, code paths).
    """

    pipeline: str = DEFAULT_PIPELINE
    pipeline_name: str = DEFAULT_PIPELINE_NAME
    pipeline_root: str = DEFAULT_PIPELINE_ROOT
    data_root: str = DEFAULT_DATA_ROOT
    image: str = DEFAULT_IMAGE
    output_dir: str = DEFAULT_OUTPUT_DIR
    output_filename: str = "pipeline.json"
    display_name: str | None = None
    beam_runner: str = "DirectRunner"
    direct_num_workers: int = 1
    project: str | None = None
    region: str | None = None
    temp_location: str | None = None
    flink_job_endpoint: str | None = None
    flink_worker_pool: str | None = None
    flink_parallelism: int = 2
    extra_beam_args: list[str] = dataclasses.field(default_factory=list)
    trainer_run_fn: str | None = PENGUIN_RUN_FN
    transform_preprocessing_fn: str | None = None
    module_file: str | None = None
    pipeline_spec_2_1: bool = True
    enable_cache: bool = True
    pipeline_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def for_pipeline(cls, pipeline: str, **fields: Any) -> KubeflowOptions:
        """Options of ``pipeline`` (a ``pipelines.kinds`` name) with its defaults, ``fields`` overriding them."""
        kind = pipeline_kind(pipeline)
        defaults = {"pipeline": kind.name, "pipeline_name": kind.pipeline_name, "data_root": default_data_root(kind),
                    "trainer_run_fn": kind.trainer_run_fn,
                    "transform_preprocessing_fn": kind.transform_preprocessing_fn}
        return cls(**{**defaults, **fields})


def validate_pipeline_name(name: str) -> str:
    """Returns ``name`` if Kubeflow / Vertex accept it, else raises ValueError with a corrected suggestion."""
    if PIPELINE_NAME_RE.fullmatch(name):
        return name
    suggestion = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:128] or DEFAULT_PIPELINE_NAME
    raise ValueError(
        f"--pipeline-name {name!r} is not a valid Kubeflow / Vertex AI pipeline name: use only lowercase letters, "
        f"digits and '-', starting with a letter or digit, at most 128 characters (e.g. {suggestion!r})"
    )


def absolute_location(location: str, flag: str) -> str:
    """``location`` as the tasks need it: a URI unchanged, a local path made absolute (and logged when it changes).

    The compiled spec is read by containers that each run from their own working directory (the pod's, or a task
    folder under ``spec_runner.py``), so a relative path such as ``out/demo/data`` would not find the data.
    """
    if URI_RE.match(location) or os.path.isabs(location):
        return location
    resolved = os.path.abspath(os.path.expanduser(location))
    logging.info("%s %s is a relative local path: resolved to %s (every task runs from its own folder)",
                 flag, location, resolved)
    return resolved


def with_absolute_locations(options: KubeflowOptions) -> KubeflowOptions:
    """A copy of ``options`` whose local locations (pipeline root, data root, module file, push destination) are
    absolute; URIs (``gs://``, ``s3://``, ...) are kept as they are."""
    kwargs = dict(options.pipeline_kwargs)
    for key in LOCATION_KWARGS:
        if isinstance(kwargs.get(key), str):
            kwargs[key] = absolute_location(kwargs[key], f"--set {key}")
    return dataclasses.replace(
        options,
        pipeline_root=absolute_location(options.pipeline_root, "--pipeline-root"),
        data_root=absolute_location(options.data_root, "--data-root"),
        module_file=absolute_location(options.module_file, "--module-file") if options.module_file else None,
        pipeline_kwargs=kwargs,
    )


def beam_pipeline_args(options: KubeflowOptions) -> list[str]:
    """Beam args baked into every Beam component's container args: DirectRunner in the pod, Dataflow, or a Flink
    session cluster through Beam's portable runner (its Beam job server at ``flink_job_endpoint``, Python workers
    from a worker pool at ``flink_worker_pool`` that runs the pipeline's image; see docs/guides/kubeflow.md)."""
    if options.beam_runner == "DirectRunner":
        if options.direct_num_workers < 0:
            raise ValueError(f"--direct-num-workers must be >= 0 (0: one per CPU), got {options.direct_num_workers}")
        args = ["--runner=DirectRunner", f"--direct_num_workers={options.direct_num_workers}"]
    elif options.beam_runner == "DataflowRunner":
        missing = [flag for flag, value in (("--project", options.project), ("--region", options.region),
                                            ("--temp-location", options.temp_location)) if not value]
        if missing:
            raise ValueError(f"--beam-runner DataflowRunner needs {', '.join(missing)} (the GCP project, its region "
                             "and a gs:// folder for Dataflow's temporary files)")
        args = ["--runner=DataflowRunner", f"--project={options.project}", f"--region={options.region}",
                f"--temp_location={options.temp_location}"]
    elif options.beam_runner == "FlinkRunner":
        missing = [flag for flag, value in (("--flink-job-endpoint", options.flink_job_endpoint),
                                            ("--flink-worker-pool", options.flink_worker_pool)) if not value]
        if missing:
            raise ValueError(f"--beam-runner FlinkRunner needs {', '.join(missing)} (HOST:PORT of the Beam Flink job "
                             "server beside the Flink session cluster, and of the Python worker pool that runs "
                             "--image)")
        args = flink.flink_beam_args(options.flink_job_endpoint, options.flink_worker_pool,
                                     flink.FlinkSettings(parallelism=options.flink_parallelism,
                                                         sdk_workers=options.flink_parallelism),
                                     worker_image=options.image)
    else:
        raise ValueError(f"--beam-runner must be one of {', '.join(BEAM_RUNNERS)}, got {options.beam_runner!r}")
    return args + list(options.extra_beam_args)


def parse_overrides(items: list[str], pipeline: str = DEFAULT_PIPELINE) -> dict[str, Any]:
    """Parses ``KEY=VALUE`` pairs for the factory of ``pipeline`` (``create_pipeline``, ``create_taxi_pipeline``):
    KEY a keyword parameter of the factory (``train_steps``), or ``quantize.<field>`` / ``gate.<field>``, applied to
    the pipeline's default ``QuantizeConfig`` / ``GateConfig`` and validated there. VALUE is JSON when it parses
    (numbers, lists, objects), else text."""
    from quantgate.pipelines.config import GATE_PREFIX, QUANTIZE_PREFIX, with_dotted_configs

    kind = pipeline_kind(pipeline)
    factory = kind.factory
    factory_name = f"{factory.__module__}.{factory.__name__}"
    allowed = {name: param.default for name, param in inspect.signature(factory).parameters.items()
               if param.kind is inspect.Parameter.KEYWORD_ONLY and name not in _RESERVED_KWARGS | _CONFIG_KWARGS}
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train_steps=300 or "
                             "--set gate.max_delta=0.02")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key not in allowed and not key.startswith((QUANTIZE_PREFIX, GATE_PREFIX)):
            known = ", ".join(f"{name} (default {default!r})" for name, default in sorted(allowed.items()))
            raise ValueError(f"--set {key}: not a parameter of {factory_name}; known: {known}; and the "
                             f"configuration keys {QUANTIZE_PREFIX}<field> / {GATE_PREFIX}<field> (e.g. "
                             f"{GATE_PREFIX}max_delta=0.02)")
        overrides[key] = value
    try:
        return with_dotted_configs(overrides, kind.default_configs)
    except ValueError as error:
        raise ValueError(f"--set: {error}") from None


def build_pipeline(options: KubeflowOptions) -> Any:
    """The pipeline's factory for Kubeflow: the platform's MLMD, Beam args from ``options``, the Trainer's (and
    Transform's) code from the image.

    Local locations in ``options`` are made absolute first (``with_absolute_locations``). With ``module_file`` the
    Trainer's module (and the taxi Transform's default module file) are packaged as wheels at compile time instead.
    """
    kind = pipeline_kind(options.pipeline)
    validate_pipeline_name(options.pipeline_name)
    options = with_absolute_locations(options)
    code: dict[str, Any] = ({"module_file": options.module_file, "trainer_run_fn": None}
                            if options.module_file else {"trainer_run_fn": options.trainer_run_fn})
    if kind.transform_preprocessing_fn is not None:  # a pipeline with Transform
        code["transform_preprocessing_fn"] = None if options.module_file else options.transform_preprocessing_fn
    return kind.factory(
        pipeline_name=options.pipeline_name,
        pipeline_root=options.pipeline_root,
        data_root=options.data_root,
        beam_pipeline_args=beam_pipeline_args(options),
        metadata_connection_config=None,
        enable_cache=options.enable_cache,
        **code,
        **options.pipeline_kwargs,
    )


def kubeflow_problems(pipeline: Any) -> list[str]:
    """What KubeflowV2DagRunner or the container would reject in ``pipeline``, one actionable line each."""
    from tfx.dsl.components.base import executor_spec
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    problems = []
    seen_types: set[type] = set()
    for component in pipeline.components:
        spec = getattr(component, "executor_spec", None)
        if spec is not None and not isinstance(spec, executor_spec.ExecutorClassSpec):
            problems.append(f"component {component.id}: executor spec {type(spec).__name__} is not class-based; "
                            "Kubeflow v2 runs only ExecutorClassSpec / BeamExecutorSpec executors")
        channels = list(component.inputs.values()) + list(component.outputs.values())
        for artifact_type in {channel.type for channel in channels} - seen_types:
            seen_types.add(artifact_type)
            if artifact_type in compiler_utils._SUPPORTED_STANDARD_ARTIFACT_TYPES:  # the compiler's own list (private)
                continue
            name = artifact_type.TYPE_NAME
            if not CUSTOM_TYPE_NAME_RE.fullmatch(name):
                problems.append(f"artifact type {name} (used by {component.id}): TYPE_NAME must match "
                                f"{CUSTOM_TYPE_NAME_RE.pattern} and be importable as module.Class, e.g. "
                                f"components.{artifact_type.__name__}")
            if artifact_type.PROPERTIES:
                problems.append(f"artifact type {name} (used by {component.id}): declares PROPERTIES "
                                f"{sorted(artifact_type.PROPERTIES)}, but Kubeflow v2's schema for custom types has "
                                "none; drop PROPERTIES and record these values with set_*_custom_property")
    return problems


def compile_pipeline(options: KubeflowOptions) -> str:
    """Builds and compiles the pipeline; returns the path of the PipelineJob file written into ``output_dir``."""
    from tfx import v1 as tfx

    if not options.output_filename.endswith((".json", ".yaml", ".yml")):
        raise ValueError(f"--output-filename {options.output_filename!r} must end in .json or .yaml")
    started = time.monotonic()
    pipeline = build_pipeline(options)
    problems = kubeflow_problems(pipeline)
    if problems:
        raise ValueError("the pipeline cannot run on Kubeflow v2 / Vertex AI:\n  " + "\n  ".join(problems))
    config = tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
        display_name=options.display_name,
        default_image=options.image,
        use_pipeline_spec_2_1=options.pipeline_spec_2_1,
    )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=config, output_dir=options.output_dir, output_filename=options.output_filename)
    runner.run(pipeline)
    path = os.path.join(options.output_dir, options.output_filename)
    logging.info("compiled %d components of %s into %s in %.1f s (image %s)", len(pipeline.components),
                 options.pipeline_name, path, time.monotonic() - started, options.image)
    return path


def _parser() -> argparse.ArgumentParser:
    defaults = KubeflowOptions()
    by_pipeline = PIPELINES.values()
    parser = argparse.ArgumentParser(
        prog="python kubeflow/runner.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Submit the file with google.cloud.aiplatform.PipelineJob (Vertex AI) or kfp.Client (Kubeflow "
               "Pipelines v2): see kubeflow/README.md.")
    where = parser.add_argument_group("pipeline and locations")
    where.add_argument("--pipeline", choices=sorted(PIPELINES), default=DEFAULT_PIPELINE,
                       help="which pipeline: penguin (the demo) or taxi (Chicago taxi, with Transform); "
                            "default %(default)s")
    where.add_argument("--pipeline-name",
                       help="lowercase letters, digits and '-' (Vertex AI's rule); default "
                            + ", ".join(f"{k.pipeline_name} for {k.name}" for k in by_pipeline))
    where.add_argument("--display-name", help="name shown in the UI (default: the pipeline name)")
    where.add_argument("--pipeline-root", default=defaults.pipeline_root,
                       help="where the artifacts go: gs://... on Vertex, or any URI the pods can write (a local "
                            "path is made absolute); default %(default)s")
    where.add_argument("--data-root",
                       help="folder of CSV files for CsvExampleGen (a local path is made absolute); default "
                            + ", ".join(f"{default_data_root(k)} for {k.name}" for k in by_pipeline))
    where.add_argument("--image", default=defaults.image,
                       help="container image built from kubeflow/Dockerfile, for every task; default %(default)s")
    where.add_argument("--output-dir", default=defaults.output_dir,
                       help="folder for the compiled PipelineJob; default %(default)s")
    where.add_argument("--output-filename", default=defaults.output_filename,
                       help="file name, .json or .yaml; default %(default)s")
    beam = parser.add_argument_group("Beam")
    beam.add_argument("--beam-runner", choices=BEAM_RUNNERS, default=defaults.beam_runner,
                      help="DirectRunner runs Beam inside each task's pod; DataflowRunner sends it to Dataflow "
                           "(needs --project, --region, --temp-location); FlinkRunner to a Flink session cluster "
                           "through Beam's portable runner (needs --flink-job-endpoint, --flink-worker-pool); "
                           "default %(default)s")
    beam.add_argument("--direct-num-workers", type=int, default=defaults.direct_num_workers,
                      help="DirectRunner workers per pod (0: one per CPU); default %(default)s")
    beam.add_argument("--flink-job-endpoint", metavar="HOST:PORT",
                      help="FlinkRunner: the Beam Flink job server of the Flink session cluster")
    beam.add_argument("--flink-worker-pool", metavar="HOST:PORT",
                      help="FlinkRunner: the Python SDK worker pool (a service running --image with "
                           "python -m apache_beam.runners.worker.worker_pool_main)")
    beam.add_argument("--flink-parallelism", type=int, default=defaults.flink_parallelism,
                      help="FlinkRunner: Flink's parallelism and the Python workers per task; default %(default)s")
    beam.add_argument("--project", help="GCP project (Dataflow)")
    beam.add_argument("--region", help="GCP region (Dataflow), e.g. us-central1")
    beam.add_argument("--temp-location", help="gs:// folder for Dataflow's temporary files")
    beam.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                      help="extra Beam pipeline arg, repeatable, e.g. --beam-arg=--machine_type=n1-standard-4")
    parameters = parser.add_argument_group("pipeline parameters")
    parameters.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="a keyword parameter of the pipeline's factory (quantgate.pipelines.pipeline.create_pipeline, "
                            "quantgate.pipelines.taxi.create_taxi_pipeline: steps, calibration...) or a field of its "
                            "quantize / gate configuration (quantgate.pipelines.config: QuantizeConfig, GateConfig) "
                            "as quantize.<field> / gate.<field>, VALUE as JSON or text, repeatable, e.g. "
                            "--set train_steps=500 --set gate.max_delta=0.02 "
                            "--set quantize.candidate_modes='[\"float16\"]'; unknown keys and invalid values are "
                            "rejected, naming the known keys or the field")
    parameters.add_argument("--trainer-run-fn",
                       help="import path of the Trainer's run_fn inside the image; default "
                            + ", ".join(f"{k.trainer_run_fn} for {k.name}" for k in by_pipeline))
    parameters.add_argument("--transform-preprocessing-fn",
                       help="import path of Transform's preprocessing_fn inside the image (taxi only); default "
                            + ", ".join(f"{k.transform_preprocessing_fn} for {k.name}" for k in by_pipeline
                                        if k.transform_preprocessing_fn))
    parameters.add_argument("--module-file",
                       help="package this Trainer module file (and, for taxi, Transform's module file) as wheels "
                            "under the pipeline root at compile time (TFX's default; needs write access to the "
                            "pipeline root) instead of --trainer-run-fn / --transform-preprocessing-fn")
    parameters.add_argument("--pipeline-spec-2-0", action="store_true",
                       help="emit PipelineSpec schema 2.0.0 instead of 2.1.0 (default: 2.1.0, which both Vertex "
                            "AI and the KFP v2 backend read)")
    parameters.add_argument("--no-cache", action="store_true", help="disable the platform's execution cache")
    return parser


def options_from_args(argv: list[str] | None = None) -> KubeflowOptions:
    """Parses the command line into ``KubeflowOptions`` (validated where no pipeline import is needed)."""
    args = _parser().parse_args(argv)
    kind = pipeline_kind(args.pipeline)
    if args.transform_preprocessing_fn and kind.transform_preprocessing_fn is None:
        raise ValueError(f"--transform-preprocessing-fn: the {kind.name} pipeline has no Transform; drop the flag or "
                         "pass --pipeline taxi")
    defaults = KubeflowOptions.for_pipeline(kind.name)
    return KubeflowOptions.for_pipeline(
        kind.name,
        pipeline_name=validate_pipeline_name(args.pipeline_name or defaults.pipeline_name),
        pipeline_root=args.pipeline_root,
        data_root=args.data_root or defaults.data_root,
        image=args.image,
        output_dir=args.output_dir,
        output_filename=args.output_filename,
        display_name=args.display_name,
        beam_runner=args.beam_runner,
        direct_num_workers=args.direct_num_workers,
        project=args.project,
        region=args.region,
        temp_location=args.temp_location,
        flink_job_endpoint=args.flink_job_endpoint,
        flink_worker_pool=args.flink_worker_pool,
        flink_parallelism=args.flink_parallelism,
        extra_beam_args=args.beam_arg,
        trainer_run_fn=args.trainer_run_fn or defaults.trainer_run_fn,
        transform_preprocessing_fn=args.transform_preprocessing_fn or defaults.transform_preprocessing_fn,
        module_file=args.module_file,
        pipeline_spec_2_1=not args.pipeline_spec_2_0,
        enable_cache=not args.no_cache,
        pipeline_kwargs=parse_overrides(args.overrides, kind.name),
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: compiles and prints the PipelineJob path; bad options exit 2 with the reason."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options = options_from_args(argv)
        path = compile_pipeline(options)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
