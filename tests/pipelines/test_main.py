"""``python -m pipelines lineage`` as a user runs it: a child process, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", "lineage", *args], capture_output=True, text=True,
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


def test_demo_run_lineage_json_matches_the_library(demo_run) -> None:
    from pipelines import lineage

    result = _cli("--metadata", demo_run.paths.metadata_path, "--pushed", "latest", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == lineage.pushed_chain(demo_run.store, "latest")
    text = _cli("--metadata", demo_run.paths.metadata_path)
    assert text.returncode == 0 and text.stdout.startswith("pushed model")
