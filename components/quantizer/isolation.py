"""Runs a function in a child process so that a native abort (LLVM error, SIGABRT) cannot kill the orchestrator.

The child is a fresh interpreter running this file as a script, not a multiprocessing child: it neither forks
TensorFlow's or Beam's threads nor re-imports the caller's ``__main__`` (which, with ``spawn``, reruns any script
lacking a main guard), and it imports only what the function needs. Its stdout and stderr (the converter's C++
logging included) go to a log file; the function and its arguments go in with cloudpickle (the caller's
``sys.path`` as PYTHONPATH), and the result or Python exception comes back pickled. A death by signal or a non-zero
exit becomes ``IsolatedProcessError`` with the log's last lines that are not TensorFlow's start-up noise (CUDA
plugin registration, oneDNN and CPU-feature notices), and with the last stage the child announced (``log_stage``).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

import cloudpickle

LOG_TAIL_LINES = 30
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
            cloudpickle.dump((fn, kwargs), f)
        # The child sees the caller's import path: fn is unpickled by module name (and so is this module).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}
        start = time.monotonic()
        with open(log_path, "wb") as log:
            child = subprocess.Popen([sys.executable, os.path.abspath(__file__), request_path, result_path],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
            logging.info("%s: started child process %d", what, child.pid)
            exitcode = child.wait()
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
    _child_main(sys.argv[1], sys.argv[2])
