"""The run's console (pipelines/console.py): what reaches the terminal, what only the log file gets, passwords
redacted in both; and the local runner's one-line disk-full error."""

from __future__ import annotations

import errno
import io
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from tfx import v1 as tfx

from quantgate.pipelines import console, lineage
from quantgate.pipelines.data import write_penguins_csv
from quantgate.pipelines.local_runner import LocalRunConfig, LocalRunPaths, disk_full_error

PASSWORD = 's3cr"et pa55'  # a quote and a space: the text format escapes it


def _mysql_config() -> object:
    return tfx.orchestration.metadata.mysql_metadata_connection_config(
        host="db.internal", port=3306, database="mlmd", username="root", password=PASSWORD)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, console.QuietConsole]]:
    """A logger whose records go through the console's filters into a string, as ``run_console`` wires them."""
    stream, quiet = io.StringIO(), console.QuietConsole()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(console.ConsoleFormatter())
    handler.addFilter(quiet)
    logger = logging.getLogger("quantgate-test-console")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream, quiet
    finally:
        logger.removeHandler(handler)


def test_redact_hides_the_password_of_a_connection_config() -> None:
    text = str(_mysql_config())
    assert "password:" in text and "s3cr" in text  # what LocalDagRunner would log
    redacted = console.redact(text)
    assert "s3cr" not in redacted and "pa55" not in redacted
    assert 'password: "***"' in redacted and 'host: "db.internal"' in redacted and 'user: "root"' in redacted
    assert console.redact("MySQLConfig(password='x y', user='root')") == "MySQLConfig(password='***', user='root')"
    assert console.redact("--password=hunter2 --user=root") == "--password=*** --user=root"
    assert console.redact("no secrets here: user=root") == "no secrets here: user=root"


def test_reprs_leave_the_password_out() -> None:
    mysql = lineage.MySQLConfig(host="db.internal", database="mlmd", user="root", password=PASSWORD)
    assert "s3cr" not in repr(mysql) and "password" not in repr(mysql)
    assert mysql.connection_config().mysql.password == PASSWORD  # still used to connect
    run = LocalRunConfig(paths=LocalRunPaths(home="/tmp/x"), metadata_connection_config=_mysql_config())
    assert "s3cr" not in repr(run) and "metadata_connection_config" not in repr(run)


def test_a_logged_connection_config_is_redacted_on_every_handler(tmp_path) -> None:
    # As LocalDagRunner logs it: the proto as a %s argument of an INFO record.
    path = str(tmp_path / "logs" / "run.log")
    code = textwrap.dedent(f"""
        import logging
        from quantgate.pipelines import console, lineage
        config = lineage.MySQLConfig(host="db.internal", database="mlmd", user="root", password={PASSWORD!r})
        config = config.connection_config()
        with console.run_console({path!r}, verbose=True) as out:
            logging.getLogger("absl").info("Using connection config:\\n %s", config.mysql)
            try:
                raise RuntimeError(f"cannot connect with {{config.mysql}}")
            except RuntimeError:
                logging.getLogger("absl").exception("the traceback carries it too")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    log_text = open(path).read()
    for text in (result.stderr, log_text):
        assert "Using connection config:" in text and 'password: "***"' in text
        assert "the traceback carries it too" in text and "RuntimeError: cannot connect with" in text
        assert "s3cr" not in text and "pa55" not in text


def test_quiet_console_admits_quantgate_and_turns_component_lines_into_progress(captured, tmp_path) -> None:
    logger, stream, _ = captured
    logger.info("Using deployment config:\n %s", "a protobuf dump")  # logged from tests/: not quantgate's code
    logger.warning("property_predicate is not supported.")
    logger.info("Component %s is running.", "CsvExampleGen")
    logger.info("Component %s is finished.", "CsvExampleGen")
    logger.info("Component %s is running.", "Trainer")
    logger.info("A cached execution %d is used.", 5)
    logger.info("Component %s is finished.", "Trainer")
    lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]  # drop the time
    assert lines[0] == "CsvExampleGen started"
    assert lines[1].startswith("CsvExampleGen finished (") and lines[1].endswith(" s)")
    assert lines[2:] == ["Trainer started", "Trainer finished (cached)"]
    # quantgate's own code logs through the root logger; the console admits it by the file it comes from.
    root = logging.getLogger()
    root_handler = logger.handlers[0]
    root.addHandler(root_handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        write_penguins_csv(str(tmp_path))
    finally:
        root.removeHandler(root_handler)
        root.setLevel(level)
    assert "wrote " in stream.getvalue().splitlines()[-1] and " penguins to " in stream.getvalue()


def test_run_console_keeps_the_terminal_quiet_and_the_log_file_complete(tmp_path) -> None:
    path = str(tmp_path / "logs" / "run.log")
    # The child logs as the libraries do, writes to its file descriptors natively (as TensorFlow's C++ code and
    # the setuptools of the module-file wheel do), and logs through quantgate's own code.
    code = textwrap.dedent(f"""
        import logging, os, subprocess, sys, warnings
        from quantgate.pipelines import console
        with console.run_console({path!r}, verbose=False) as out:
            from quantgate.pipelines.data import write_penguins_csv  # loads TensorFlow: its CUDA-factory errors on fd 2
            logging.getLogger("absl").info("Using deployment config:\\n %s", "a protobuf dump")
            logging.getLogger("absl").info("Component %s is running.", "CsvExampleGen")
            os.write(2, b"E0000 cuda_dnn.cc: native noise\\n")
            subprocess.run([sys.executable, "-c", "print('running bdist_wheel')"], check=True)
            print("a library's print")
            warnings.warn("a type-hint notice", UserWarning)
            write_penguins_csv({str(tmp_path / "data")!r})
            from absl import logging as absl_logging
            absl_logging.set_verbosity(absl_logging.get_verbosity())  # what TensorFlow does around a SavedModel save
            logging.getLogger("absl").info("Component %s is finished.", "CsvExampleGen")
            print("the summary", file=out)
        print("after the run")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = [line.split(" ", 1)[1] if line[:2].isdigit() else line for line in result.stdout.splitlines()]
    assert lines[0] == "CsvExampleGen started"
    assert lines[1].startswith("wrote ") and " penguins to " in lines[1]
    assert lines[2].startswith("CsvExampleGen finished (")
    assert lines[3:] == ["the summary", "after the run"]  # the descriptors are restored after the run
    log_text = open(path).read()
    for noise in ("a protobuf dump", "E0000 cuda_dnn.cc", "running bdist_wheel", "a library's print", "a type-hint notice", "Component CsvExampleGen is running.", " penguins to "):
        assert noise in log_text, noise
    assert "the summary" not in log_text


def _enospc() -> OSError:
    # A real "No space left on device": /dev/full refuses every write with ENOSPC.
    try:
        with open("/dev/full", "w") as full:
            full.write("x")
    except OSError as error:
        return error
    raise AssertionError("writing to /dev/full did not fail")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_disk_full_is_one_line_naming_where() -> None:
    paths = LocalRunPaths(home="/srv/qg")
    enospc = _enospc()
    assert enospc.errno == errno.ENOSPC
    full = disk_full_error(enospc, paths)
    assert str(full) == ("disk full at /srv/qg/pipeline_root: free space and re-run (finished components are "
                         "cached)")
    named = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/srv/qg/pipeline_root/Trainer/model/5/x.pb")
    assert str(disk_full_error(named, paths)).startswith("disk full at /srv/qg/pipeline_root/Trainer/model/5/x.pb:")
    # The launcher re-raises an executor's error, possibly wrapped: the cause is followed.
    try:
        try:
            raise enospc
        except OSError as error:
            raise ValueError("executor failed") from error
    except ValueError as wrapped:
        assert str(disk_full_error(wrapped, paths)).startswith("disk full at /srv/qg/pipeline_root:")
    # MLMD's SQLite layer: a RuntimeError with its message before the SQL statement it echoes.
    sqlite_full = RuntimeError("Error when executing query: database or disk is full query: INSERT INTO ...")
    assert str(disk_full_error(sqlite_full, paths)).startswith("disk full at /srv/qg/pipeline_root/metadata.sqlite:")
    assert disk_full_error(OSError(errno.EACCES, "Permission denied"), paths) is None
    assert disk_full_error(RuntimeError("something else"), paths) is None
