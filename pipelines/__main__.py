"""``python -m pipelines``: run the demo pipeline locally (``run``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from pipelines import lineage
from pipelines.local_runner import DEFAULT_PIPELINE_NAME, LocalRunConfig, LocalRunPaths, run_local


def _run(args: argparse.Namespace) -> int:
    paths = LocalRunPaths(home=os.path.abspath(args.home), pipeline_name=args.pipeline_name)
    config = LocalRunConfig(paths=paths, num_workers=args.direct_num_workers,
                            running_mode=args.direct_running_mode, enable_cache=not args.no_cache)
    run_local(config)
    store = lineage.open_sqlite_store(paths.metadata_path)
    trainer = lineage.latest_complete_execution(store, paths.pipeline_name, "Trainer")
    model_uri = lineage.output_artifacts(store, trainer.id)["model"][0].uri if trainer else "(no Trainer run)"
    print(f"pipeline root : {paths.pipeline_root}")
    print(f"MLMD (SQLite) : {paths.metadata_path}")
    print(f"trained model : {model_uri}")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the penguin demo pipeline locally (LocalDagRunner, SQLite MLMD)")
    run.add_argument("--home", default="out/demo", help="folder for data, pipeline root and MLMD (default: out/demo)")
    run.add_argument("--pipeline-name", default=DEFAULT_PIPELINE_NAME)
    run.add_argument("--direct-num-workers", type=int, default=1, help="Beam DirectRunner workers")
    run.add_argument("--direct-running-mode", default="in_memory",
                     choices=["in_memory", "multi_threading", "multi_processing"])
    run.add_argument("--no-cache", action="store_true", help="re-run every component")
    run.set_defaults(func=_run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
