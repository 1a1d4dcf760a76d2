"""The console of ``quantgate run``: quantgate's own progress lines on the terminal, everything (library
logs, TensorFlow's native stderr, children's output) in a log file under the run's home, passwords redacted in both.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from absl import logging as absl_logging

# Where quantgate's code lives: records logged from files under these folders reach the quiet console. Filtering by
# file instead of logger name also admits the components that log through the root logger.
PROJECT_DIRS = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), name) + os.sep
                     for name in ("components", "pipelines"))

# LocalDagRunner's per-component lines (tfx.orchestration.local.local_dag_runner, through absl -> logging); the
# launcher's, to tell a cached component from one that ran.
_RUNNING, _FINISHED = "Component %s is running.", "Component %s is finished."
_CACHED = "A cached execution %d is used."

# `password: "..."` (a ConnectionConfig's text format, as LocalDagRunner logs it) and `password='...'` /
# `password=...` (reprs, command lines); quoted values may hold escaped quotes.
_PASSWORD = re.compile(r"""(password["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,;)}\]]+)""",
                       re.IGNORECASE)
REDACTED = "***"

# ``log.error(..., extra=FILE_ONLY)``: for the log file, not the quiet console (e.g. a traceback behind the one-line
# error the CLI prints).
FILE_ONLY = {"file_only": True}


def redact(text: str) -> str:
    """``text`` with the value of every ``password: ...`` / ``password=...`` replaced by ``***``."""
    def hide(match: re.Match[str]) -> str:
        value = match.group(2)
        quote = value[0] if value[0] in "\"'" else ""
        return f"{match.group(1)}{quote}{REDACTED}{quote}"
    return _PASSWORD.sub(hide, text)


class RedactingFormatter(logging.Formatter):
    """Formats a record, then redacts passwords in all of it: the message and any traceback or stack below it.

    Every handler formats with one, so no handler, console or file, writes the original.
    """

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class QuietConsole(logging.Filter):
    """Admits quantgate's own records, and turns LocalDagRunner's component lines into short progress lines."""

    def __init__(self) -> None:
        super().__init__()
        self._started: dict[str, float] = {}
        self._cached: set[str] = set()
        self._current: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _RUNNING and record.args:
            self._current = str(record.args[0])
            self._started[self._current] = time.monotonic()
            record.console_text = f"{self._current} started"
            return True
        if record.msg == _CACHED:
            if self._current is not None:
                self._cached.add(self._current)
            return False
        if record.msg == _FINISHED and record.args:
            node = str(record.args[0])
            seconds = time.monotonic() - self._started.pop(node, time.monotonic())
            how = "cached" if node in self._cached else f"{seconds:.1f} s"
            record.console_text = f"{node} finished ({how})"
            return True
        return record.pathname.startswith(PROJECT_DIRS) and not getattr(record, "file_only", False)


class ConsoleFormatter(RedactingFormatter):
    """Short lines: a time, and the message (or the progress line ``QuietConsole`` put on the record)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = getattr(record, "console_text", None)
        if text is None:
            return super().formatMessage(record)
        return f"{self.formatTime(record, self.datefmt)} {text}"


FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_path(home: str) -> str:
    """A new log file for a run: ``<home>/logs/run-<local time>.log``."""
    return os.path.join(home, "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))


def _handler(stream: TextIO, formatter: RedactingFormatter, *filters: logging.Filter) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    for item in filters:
        handler.addFilter(item)
    return handler


@contextmanager
def run_console(path: str, *, verbose: bool) -> Iterator[TextIO]:
    """Sets up logging for a run and yields the console stream to print the answer on.

    Every record at INFO goes to the file at ``path``. Quiet (the default): file descriptors 1 and 2 point at the
    file too, so what bypasses Python's logging (TensorFlow's native errors, the setuptools banner of the module-file
    wheel, Beam workers) lands there instead of on the terminal; the console gets only ``QuietConsole``'s lines.
    ``verbose``: the console gets every record, and native output stays on the terminal.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    log_file = open(path, "a", buffering=1, encoding="utf-8")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [] if verbose else [os.dup(1), os.dup(2)]
    console = sys.stdout if verbose else open(saved[0], "w", buffering=1, encoding="utf-8", closefd=False)
    root = logging.getLogger()
    previous = (root.level, list(root.handlers))
    for handler in previous[1]:
        root.removeHandler(handler)
    handlers = [_handler(log_file, RedactingFormatter(FILE_FORMAT))]
    if verbose:
        handlers.append(_handler(sys.stderr, RedactingFormatter(FILE_FORMAT)))
    else:
        handlers.append(_handler(console, ConsoleFormatter(), QuietConsole()))
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    # absl's verbosity flag defaults to WARNING: TensorFlow's SavedModel export "restores" it around a save, which
    # sets the 'absl' logger (all of TFX's records) to WARNING for the rest of the run. At INFO it restores INFO.
    absl_verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    logging.captureWarnings(True)  # Beam's type-hint notices, FutureWarnings: records, so file only
    try:
        yield console
    finally:
        logging.captureWarnings(False)
        absl_logging.set_verbosity(absl_verbosity)
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(previous[0])
        for handler in previous[1]:
            root.addHandler(handler)
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, original in zip((1, 2), saved, strict=False):
            os.dup2(original, fd)
            os.close(original)
        if console is not sys.stdout:
            console.close()
        log_file.close()
