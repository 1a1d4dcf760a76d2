"""Runs a function in a child process so that a native abort (LLVM error, SIGABRT) cannot kill the orchestrator.

The children come from a warm fork server: a fresh interpreter running this file as a script (not a multiprocessing
child, so it neither inherits TensorFlow's or Beam's threads nor re-imports the caller's ``__main__``), which imports
TensorFlow once and then forks one child per call. Each call thus runs in its own process, with a fresh converter
state, and pays a fork (milliseconds) instead of ``import tensorflow`` (seconds). ``warm_up`` starts the server ahead
of the first call; it lives until this process exits (its stdin closes: it exits at EOF, so it never outlives its
parent) or sits idle for ``SERVER_IDLE_SECONDS``, and is started again when needed.

A child's stdout and stderr (the converter's C++ logging included) go to a log file; the function and its arguments
go in with cloudpickle (the caller's ``sys.path``, working directory and environment with them), and the result or
Python exception comes back pickled. A death by signal or a non-zero exit becomes ``IsolatedProcessError`` with the
log's last lines that are not TensorFlow's start-up noise (CUDA plugin registration, oneDNN and CPU-feature
notices), and with the last stage the child announced (``log_stage``).
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

import cloudpickle

LOG_TAIL_LINES = 30
# What the server imports before its first fork: what every conversion needs and what costs seconds to import.
PRIMED_MODULES = ("tensorflow", "tensorflow.lite.python.lite")
SERVER_IDLE_SECONDS = 600.0
STAGE_MARKER = "quantgate-stage: "
# What every TensorFlow import prints, whatever went wrong: on a machine without a GPU it fills the whole tail.
_NOISE = re.compile(
    r"cuda|cudnn|cufft|cublas|Unable to register|TF-TRT|oneDNN|computation placer|external/local_xla"
    r"|This TensorFlow binary is optimized|To enable the following instructions|rebuild TensorFlow"
    r"|absl::InitializeLog\(\)|FutureWarning|warnings\.warn\(",
    re.IGNORECASE,
)


class IsolatedProcessError(RuntimeError):
    """The child process died (signal) or exited non-zero without reporting a Python exception."""


def _child_main(request_path: str, result_path: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True)
    with open(request_path, "rb") as f:
        # The caller's context first: fn is unpickled by module name from the caller's import path.
        sys.path[:], cwd, environ = pickle.load(f)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        fn, kwargs = pickle.load(f)
    try:
        outcome: tuple[str, Any] = ("ok", fn(**kwargs))
    except Exception as error:  # reported to the parent, which re-raises it
        traceback.print_exc()
        outcome = ("error", error)
    try:
        payload = pickle.dumps(outcome)
    except Exception:  # an unpicklable exception still reaches the parent, as text
        payload = pickle.dumps(("error", RuntimeError(repr(outcome[1]))))
    with open(result_path, "wb") as f:
        f.write(payload)


def log_stage(stage: str) -> None:
    """Announces, from the child, what it is doing now; a parent whose child dies by a signal names the last stage."""
    print(f"{STAGE_MARKER}{stage}", file=sys.stderr, flush=True)


def last_stage(lines: list[str]) -> str | None:
    """The last stage ``log_stage`` announced in the child's log lines, if any."""
    for line in reversed(lines):
        if line.startswith(STAGE_MARKER):
            return line[len(STAGE_MARKER):].strip()
    return None


def converter_tail(lines: list[str], count: int = LOG_TAIL_LINES) -> str:
    """The last ``count`` log lines that are not TensorFlow's start-up noise (see ``_NOISE``) nor stage markers."""
    kept = [line for line in lines if not _NOISE.search(line) and not line.startswith(STAGE_MARKER)]
    dropped = len(lines) - len(kept)
    text = "".join(kept[-count:]) or "(the child logged nothing but TensorFlow start-up noise)\n"
    return text + (f"({dropped} lines of TensorFlow start-up noise and stage markers left out)\n" if dropped else "")


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, errors="replace") as f:
            return f.readlines()
    except OSError:
        return ["(no log)\n"]


def _describe_exit(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"was killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def _serve_child(request_path: str, result_path: str, log_path: str) -> int:
    """In a forked child of the server: runs one request with fds 1 and 2 on its log; returns the exit code."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        _child_main(request_path, result_path)
        return 0
    except BaseException:  # reading the request failed: the parent reports the log's tail
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _serve() -> None:
    """The fork server's loop: one line ``request<TAB>result<TAB>log`` in, ``pid N`` then ``exit CODE`` out."""
    for name in PRIMED_MODULES:
        __import__(name)
    replies = sys.stdout
    while select.select([sys.stdin], [], [], SERVER_IDLE_SECONDS)[0]:
        line = sys.stdin.readline()
        if not line:  # the parent is gone
            return
        request_path, result_path, log_path = line.rstrip("\n").split("\t")
        pid = os.fork()
        if pid == 0:
            os._exit(_serve_child(request_path, result_path, log_path))
        replies.write(f"pid {pid}\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(f"exit {os.waitstatus_to_exitcode(status)}\n")
        replies.flush()


class _ServerGone(Exception):
    """The server exited (idle, or killed) before it took the request: start another and send it again."""


class _ForkServer:
    """The parent's handle on the warm server: started once, used by one call at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._owner = os.getpid()

    def start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._owner != os.getpid():  # a forked copy of the parent: the server's pipes are the parent's
            self._process, self._owner = None, os.getpid()
        if self._process is not None and self._process.poll() is None:
            return
        # The server's own stderr (the imports' warnings) matters only when it dies: an unlinked temp file.
        self._log = tempfile.TemporaryFile("w+")
        self._process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, env=_child_env(), text=True, bufsize=1)
        logging.info("isolation: started the warm fork server, process %d (importing %s)", self._process.pid,
                     ", ".join(PRIMED_MODULES))

    def run(self, request_path: str, result_path: str, log_path: str, what: str) -> int:
        """Runs one request in a forked child; returns its exit code (negative: the signal that killed it)."""
        with self._lock:
            for attempt in (1, 2):
                self._start_locked()
                try:
                    return self._run_locked(request_path, result_path, log_path, what)
                except _ServerGone:
                    if attempt == 2:
                        raise IsolatedProcessError(f"{what} failed: the fork server exited twice before taking "
                                                   f"the request. Its last log lines:\n{self._log_tail()}") from None
        raise AssertionError("unreachable")

    def _run_locked(self, request_path: str, result_path: str, log_path: str, what: str) -> int:
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(f"{request_path}\t{result_path}\t{log_path}\n")
            process.stdin.flush()
        except BrokenPipeError:
            raise _ServerGone() from None
        started = _reply(process.stdout)
        if started is None:
            raise _ServerGone()
        logging.info("%s: started child process %s", what, started.split()[-1])
        finished = _reply(process.stdout)
        if finished is None:
            raise IsolatedProcessError(f"{what} failed: the fork server (process {process.pid}) died during the "
                                       f"call. Its last log lines:\n{self._log_tail()}")
        return int(finished.split()[-1])

    def _log_tail(self) -> str:
        if self._log is None:
            return "(no log)\n"
        self._log.seek(0)
        return converter_tail(self._log.readlines())

    def stop(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is None or self._owner != os.getpid() or process.poll() is not None:
            return
        assert process.stdin is not None
        process.stdin.close()  # EOF: the server returns from its loop
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _reply(stream: IO[str]) -> str | None:
    line = stream.readline()
    return line.strip() if line else None


def _child_env() -> dict[str, str]:
    # The server imports the primed modules from the caller's import path; each request brings it again.
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}


_SERVER = _ForkServer()
atexit.register(_SERVER.stop)


def warm_up() -> None:
    """Starts the fork server now (it imports TensorFlow in the background), so the first call pays no import."""
    _SERVER.start()


def run_isolated(fn: Callable[..., Any], kwargs: dict[str, Any], *, what: str) -> Any:
    """Calls ``fn(**kwargs)`` in a child Python process and returns its result.

    ``fn`` is pickled with cloudpickle (by reference when its module is importable), ``kwargs`` likewise; the result
    must be picklable.

    Args:
      what: names the work in errors and logs, e.g. ``"int8 conversion of signature 'serving_features'"``.

    Raises:
      the child's own exception (re-raised as is, e.g. ``ValueError`` for bad input), or
      IsolatedProcessError: the child died or exited non-zero; the message has ``what`` and the child's last log lines.
    """
    with tempfile.TemporaryDirectory(prefix="quantgate-isolated-") as tmp:
        request_path, result_path = os.path.join(tmp, "request.pkl"), os.path.join(tmp, "result.pkl")
        log_path = os.path.join(tmp, "child.log")
        with open(request_path, "wb") as f:
            pickle.dump(([p or os.getcwd() for p in sys.path], os.getcwd(), dict(os.environ)), f)
            cloudpickle.dump((fn, kwargs), f)
        start = time.monotonic()
        exitcode = _SERVER.run(request_path, result_path, log_path, what)
        elapsed = time.monotonic() - start
        lines = _read_lines(log_path)
        tail = converter_tail(lines)
        if exitcode != 0 or not os.path.exists(result_path):
            stage = last_stage(lines)
            raise IsolatedProcessError(
                f"{what} failed: the child process {_describe_exit(exitcode)} after {elapsed:.1f}s"
                + (f" while {stage}" if stage else "") + f". Last log lines:\n{tail}"
            )
        with open(result_path, "rb") as f:
            status, value = pickle.load(f)
        logging.info("%s: child process finished in %.1fs (%s)", what, elapsed, status)
        if status == "error":
            logging.info("%s: child log tail:\n%s", what, tail)
            raise value
        return value


if __name__ == "__main__":
    # As a script, this file's folder comes first on sys.path, where its sibling modules (report, options...) would
    # shadow any top-level module of the same name.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p) != os.path.dirname(os.path.abspath(__file__))]
    _serve()
