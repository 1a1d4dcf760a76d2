"""``quantgate lineage`` as a user runs it: a child process, its exit code, stdout and stderr."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quantgate", "lineage", *args], capture_output=True, text=True,
                          timeout=120)


def _assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("empty") / "metadata.sqlite")
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    metadata_store.MetadataStore(config)  # creates the schema, no artifacts
    return path


@pytest.fixture
def killed_run_store(tmp_path) -> tuple[str, int]:
    """A store whose only run was killed in the Trainer: its execution stayed RUNNING, no pusher ran."""
    path = str(tmp_path / "metadata.sqlite")
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(config)
    examples = store.put_artifacts([pb.Artifact(type_id=store.put_artifact_type(pb.ArtifactType(name="Examples")),
                                                uri="/a/examples", state=pb.Artifact.LIVE)])[0]
    contexts = [pb.Context(type_id=store.put_context_type(pb.ContextType(name=kind)), name=name)
                for kind, name in (("node", "pipe.Trainer"), ("pipeline_run", "2026-12-01T10:00:00.000001"))]
    execution = pb.Execution(type_id=store.put_execution_type(pb.ExecutionType(name="Trainer")),
                             last_known_state=pb.Execution.RUNNING)
    (stored,) = store.get_artifacts_by_id([examples])
    execution_id, _, _ = store.put_execution(execution, [(stored, pb.Event(type=pb.Event.INPUT))], contexts)
    return path, execution_id


def test_why_not_on_a_killed_run(killed_run_store) -> None:
    path, execution_id = killed_run_store
    result = _cli("--metadata", path, "--why-not")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pipeline run 2026-12-01T10:00:00.000001 pushed nothing:"
    assert lines[1] == "  no pusher ran: the run stopped before the gate"
    assert lines[2].startswith(f"  Trainer (execution #{execution_id}): did not finish (started 20")
    as_json = json.loads(_cli("--metadata", path, "--why-not", "--json").stdout)
    assert [(e["id"], e["state"]) for e in as_json["unfinished"]] == [(execution_id, "RUNNING")]


def test_run_error_is_one_line_and_the_traceback_is_in_the_log(tmp_path) -> None:
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, "-m", "quantgate", "run", "--pipeline", "penguin", "--home", str(home),
                             "--direct-num-workers", "0"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result
    (log_file,) = glob.glob(str(home / "logs" / "run-*.log"))
    assert result.stderr == (f"error: ValueError: direct_num_workers must be >= 1, got 0 (traceback in "
                             f"{log_file})\n")
    # The quiet console: the log's path and quantgate's own lines, none of TensorFlow's start-up noise.
    assert result.stdout.splitlines()[0] == f"log file      : {log_file}"
    assert result.stdout.splitlines()[1] == "beam runner   : DirectRunner (in_memory, 0 worker(s))"
    assert all(" penguins to " in line or "unchanged, kept" in line for line in result.stdout.splitlines()[2:])
    log_text = open(log_file).read()
    assert "Traceback" in log_text and "direct_num_workers must be >= 1" in log_text
    assert os.path.exists(home / "data" / "penguins.csv")


def test_help() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    for flag in ("--pushed", "--why-not", "--json", "--metadata", "--mysql-host", "--mysql-port",
                 "--mysql-database", "--mysql-user"):
        assert flag in result.stdout


@pytest.mark.parametrize("args, message", [
    (("--pushed", "latest"), "the ML Metadata store is empty: no pipeline has run against it"),
    (("--pushed", "3"), "the ML Metadata store is empty"),
    (("--why-not",), "the ML Metadata store is empty"),
])
def test_empty_store(empty_store: str, args: tuple[str, ...], message: str) -> None:
    _assert_one_line_error(_cli("--metadata", empty_store, *args), message)


def test_missing_and_foreign_files(tmp_path) -> None:
    _assert_one_line_error(_cli("--metadata", str(tmp_path / "nope.sqlite")), "no ML Metadata store at")
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a database, but long enough to be read as one " * 20)
    _assert_one_line_error(_cli("--metadata", str(foreign)), f"cannot open {foreign} as an ML Metadata store")
    assert foreign.read_text().startswith("not a database")  # opened read-only: untouched


def test_unreachable_mysql() -> None:
    _assert_one_line_error(
        _cli("--mysql-host", "127.0.0.1", "--mysql-port", "1", "--mysql-database", "mlmd", "--mysql-user", "root"),
        "cannot reach MLMD on MySQL root@127.0.0.1:1/mlmd")


def test_store_must_be_named_once(empty_store: str) -> None:
    _assert_one_line_error(_cli(), "say which store: --metadata PATH")
    _assert_one_line_error(_cli("--metadata", empty_store, "--mysql-host", "h"), "not both")
    _assert_one_line_error(_cli("--mysql-host", "h"), "needs --mysql-database and --mysql-user")


def test_bad_pushed_argument_is_a_usage_error() -> None:
    result = _cli("--metadata", "x", "--pushed", "newest")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "expected 'latest' or an artifact id, got 'newest'" in result.stderr


def test_run_help_offers_verbose() -> None:
    result = subprocess.run([sys.executable, "-m", "quantgate", "run", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "--verbose" in result.stdout and "logs/run-" in result.stdout


def test_demo_run_lineage_json_matches_the_library(demo_run) -> None:
    from quantgate.pipelines import lineage

    result = _cli("--metadata", demo_run.paths.metadata_path, "--pushed", "latest", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == lineage.pushed_chain(demo_run.store, "latest")
    text = _cli("--metadata", demo_run.paths.metadata_path)
    assert text.returncode == 0 and text.stdout.startswith("pushed model")
