"""``quantgate``: run a pipeline locally (``run``: the penguin demo, or ``--pipeline taxi``) and ask ML
Metadata about it (``lineage``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from typing import TextIO

from ml_metadata import metadata_store

from quantgate.pipelines import console, kinds, lineage

log = logging.getLogger(__name__)

PUSHER_ID = "QuantizedModelPusher"


def _run(args: argparse.Namespace) -> int:
    # Before TensorFlow and gRPC load: their native logging bypasses Python's.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    home = os.path.abspath(args.home or kinds.pipeline_kind(args.pipeline).home)
    log_file = console.log_path(home)
    with console.run_console(log_file, verbose=args.verbose) as out:
        print(f"log file      : {log_file}", file=out)
        failure = _run_and_report(args, home, log_file, out)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0


def _run_and_report(args: argparse.Namespace, home: str, log_file: str, out: TextIO) -> str | None:
    """Runs the pipeline and prints where everything is, the gate's summary and the lineage; an error message
    (one line, the traceback goes to the log file) when the run failed."""
    # Imported here: it loads TensorFlow and TFX, which the lineage command does not need.
    from quantgate.pipelines.local_runner import DiskFullError, LocalRunConfig, LocalRunPaths, run_local

    paths = LocalRunPaths(home=home, pipeline_name=args.pipeline_name or kinds.pipeline_kind(args.pipeline).pipeline_name)
    config = LocalRunConfig(paths=paths, pipeline=args.pipeline, num_workers=args.direct_num_workers,
                            running_mode=args.direct_running_mode, enable_cache=not args.no_cache,
                            beam_args=args.beam_arg or None)
    try:
        if args.runner == "flink":
            from quantgate.pipelines import flink

            settings = flink.FlinkSettings(parallelism=args.flink_parallelism, sdk_workers=args.flink_parallelism)
            print(f"beam runner   : Flink (embedded cluster, parallelism {settings.parallelism}; Beam's portable "
                  f"runner, Python worker pool), logs in {os.path.join(home, 'logs')}", file=out)
            with flink.flink_session(settings, os.path.join(home, "logs")) as beam_args:
                run_local(dataclasses.replace(config, beam_args=[*beam_args, *(args.beam_arg or [])]))
        else:
            print("beam runner   : " + ("set by --beam-arg" if args.beam_arg else
                                        f"DirectRunner ({args.direct_running_mode}, {args.direct_num_workers} "
                                        "worker(s))"), file=out)
            run_local(config)
    except DiskFullError as error:
        log.error("the run stopped", exc_info=True, extra=console.FILE_ONLY)
        return str(error)
    except Exception as error:
        log.error("the run failed", exc_info=True, extra=console.FILE_ONLY)
        first_line = (str(error).strip().splitlines() or [""])[0]
        return f"{type(error).__name__}: {console.redact(first_line)} (traceback in {log_file})"
    store = lineage.open_sqlite_store(paths.metadata_path)
    trainer = lineage.latest_complete_execution(store, paths.pipeline_name, "Trainer")
    model_uri = lineage.output_artifacts(store, trainer.id)["model"][0].uri if trainer else "(no Trainer run)"
    print(f"pipeline root : {paths.pipeline_root}", file=out)
    print(f"MLMD (SQLite) : {paths.metadata_path}", file=out)
    print(f"trained model : {model_uri}", file=out)
    # A pipeline without a pusher (digits-qat) has no gate summary; its comparison is the evaluator's report.
    summary = lineage.run_summary(store, paths.pipeline_name, PUSHER_ID) if kinds.pipeline_kind(args.pipeline).pushes \
        else None
    if summary is None:
        _print_evaluation(store, paths.pipeline_name, out)
    if summary is not None:
        print(file=out)
        print(lineage.format_summary(summary), file=out)
        print(file=out)
        if summary["pushed"]:
            print(lineage.format_chain(lineage.pushed_chain(store, summary["pushed_model_id"])), file=out)
        else:
            print(lineage.format_why_not(lineage.why_not(store, summary["run_id"])), file=out)
        print(f"\nask again: quantgate lineage --metadata {paths.metadata_path} "
              f"{'--pushed latest' if summary['pushed'] else '--why-not'}", file=out)
    return None


def _print_evaluation(store: metadata_store.MetadataStore, pipeline_name: str, out: TextIO) -> None:
    evaluator = lineage.latest_complete_execution(store, pipeline_name, "QuantizationEvaluator")
    if evaluator is not None:
        (evaluation,) = lineage.output_artifacts(store, evaluator.id)["evaluation"]
        print(f"evaluation    : {evaluation.uri}/report.html (metrics.json beside it)", file=out)


def _pushed_arg(value: str) -> str | int:
    if value == "latest":
        return value
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected 'latest' or an artifact id, got {value!r}")
    return int(value)


def _open_store(args: argparse.Namespace) -> metadata_store.MetadataStore:
    if args.metadata and args.mysql_host:
        raise lineage.LineageError("pass either --metadata (SQLite) or --mysql-host (MySQL), not both")
    if args.mysql_host:
        if not (args.mysql_database and args.mysql_user):
            raise lineage.LineageError("a MySQL store needs --mysql-database and --mysql-user too")
        return lineage.open_mysql_store(lineage.MySQLConfig(host=args.mysql_host, port=args.mysql_port,
                                                            database=args.mysql_database, user=args.mysql_user,
                                                            password=os.environ.get("MYSQL_PASSWORD", "")))
    if not args.metadata:
        raise lineage.LineageError("say which store: --metadata PATH (e.g. out/demo/pipeline_root/metadata.sqlite) "
                                   "or --mysql-host/--mysql-port/--mysql-database/--mysql-user")
    try:
        return lineage.open_sqlite_store(args.metadata, read_only=True)
    except FileNotFoundError as error:
        raise lineage.LineageError(str(error)) from error
    except RuntimeError as error:  # MLMD's C++ layer: not a SQLite file, or not an MLMD one; drop the SQL it echoes
        reason = str(error).split("query:  ")[0].strip()  # "...: file is not a database query:  CREATE TABLE..."
        raise lineage.LineageError(f"cannot open {args.metadata} as an ML Metadata store ({reason})") from error


def _lineage(args: argparse.Namespace) -> int:
    try:
        store = _open_store(args)
        if args.why_not is not None:
            result = lineage.why_not(store, args.why_not or None)
            text = lineage.format_why_not(result)
        else:
            result = lineage.pushed_chain(store, args.pushed)
            text = lineage.format_chain(result)
    except lineage.LineageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else text)
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    parser = argparse.ArgumentParser(prog="quantgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a pipeline locally (LocalDagRunner, SQLite MLMD): the penguin demo "
                                          "or the taxi pipeline (Transform)")
    run.add_argument("--pipeline", choices=sorted(kinds.PIPELINES), default=kinds.DEFAULT_PIPELINE,
                     help="which pipeline (default: %(default)s)")
    run.add_argument("--home", help="folder for data, pipeline root and MLMD (default: "
                                    + ", ".join(f"{k.home} for {k.name}" for k in kinds.PIPELINES.values()) + ")")
    run.add_argument("--pipeline-name", help="default: "
                                             + ", ".join(f"{k.pipeline_name} for {k.name}"
                                                         for k in kinds.PIPELINES.values()))
    run.add_argument("--direct-num-workers", type=int, default=1, help="Beam DirectRunner workers")
    run.add_argument("--direct-running-mode", default="in_memory",
                     choices=["in_memory", "multi_threading", "multi_processing"])
    run.add_argument("--runner", choices=["direct", "flink"], default="direct",
                     help="the Beam runner of every Beam component: Beam's DirectRunner in this process (default), "
                          "or Apache Flink through Beam's portable runner (an embedded Flink cluster and a Python "
                          "worker pool started for the run; `make flink-job-server` fetches the job server first)")
    run.add_argument("--flink-parallelism", type=int, default=2, help="with --runner flink: Flink's parallelism "
                                                                      "and the Python SDK workers (default 2)")
    run.add_argument("--beam-arg", action="append", metavar="ARG",
                     help="a Beam pipeline arg for every Beam component, repeatable (e.g. "
                          "--beam-arg=--runner=PortableRunner --beam-arg=--job_endpoint=HOST:PORT); replaces the "
                          "DirectRunner's args, or adds to Flink's")
    run.add_argument("--no-cache", action="store_true", help="re-run every component")
    run.add_argument("--verbose", action="store_true",
                     help="library logs (TFX, Beam, TensorFlow) on the console too; they always go to "
                          "<home>/logs/run-<time>.log")
    run.set_defaults(func=_run)

    query = commands.add_parser(
        "lineage", help="where a pushed model came from, or why a run pushed nothing (reads ML Metadata only)",
        description="Walks ML Metadata events upstream from a pushed model (blessing, quantized model, "
                    "transform graph, representative dataset, trainer model, examples), or explains a run that pushed "
                    "nothing. "
                    "Errors are one line on stderr and exit 1.")
    store = query.add_argument_group("store (one of)")
    store.add_argument("--metadata", metavar="PATH", help="a SQLite MLMD file, e.g. the demo's metadata.sqlite")
    store.add_argument("--mysql-host", help="a MySQL / MariaDB MLMD store (as Kubeflow's); password from "
                                            "$MYSQL_PASSWORD")
    store.add_argument("--mysql-port", type=int, default=3306)
    store.add_argument("--mysql-database")
    store.add_argument("--mysql-user")
    what = query.add_mutually_exclusive_group()
    what.add_argument("--pushed", type=_pushed_arg, default="latest", metavar="latest|ID",
                      help="the chain behind a PushedModel: 'latest' (default) or its artifact id")
    what.add_argument("--why-not", nargs="?", const="", metavar="RUN_ID",
                      help="why a pipeline run (default: the newest) pushed nothing: refusals, and executions that "
                           "failed (with the error) or did not finish")
    query.add_argument("--json", action="store_true", help="machine-readable output, every property included")
    query.set_defaults(func=_lineage)

    args = parser.parse_args(argv)
    if args.command == "lineage":  # prints its answer and nothing else; a run sets up its own logging
        logging.basicConfig(level=logging.WARNING, format=console.FILE_FORMAT)
    return args.func(args)
