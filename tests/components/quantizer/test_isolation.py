"""isolation: a child that aborts becomes an error with its last log lines; the test process lives on."""

from __future__ import annotations

import os
import sys

import cloudpickle
import pytest

from components.quantizer.isolation import IsolatedProcessError, run_isolated

# The child cannot import this test module by name: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _abort_after_logging(message: str) -> None:
    """Test-only child: prints like the converter does, then dies the way an LLVM error does."""
    print(message, file=sys.stderr, flush=True)
    os.abort()


def _raise_value_error(name: str) -> None:
    raise ValueError(f"feature {name!r} is missing")


def test_an_abort_becomes_an_error_naming_the_work_with_the_last_log_lines() -> None:
    parent = os.getpid()
    with pytest.raises(IsolatedProcessError) as error:
        run_isolated(_abort_after_logging, {"message": "LLVM ERROR: something went very wrong"},
                     what="int8 conversion of signature 'serving_features'")
    text = str(error.value)
    assert text.startswith("int8 conversion of signature 'serving_features' failed")
    assert "killed by signal SIGABRT" in text
    assert "LLVM ERROR: something went very wrong" in text
    assert os.getpid() == parent  # still here


def test_the_result_comes_back_from_another_process() -> None:
    child_pid = run_isolated(os.getpid, {}, what="pid")
    assert isinstance(child_pid, int) and child_pid != os.getpid()


def test_a_python_exception_in_the_child_is_re_raised_as_is() -> None:
    with pytest.raises(ValueError, match="feature 'b' is missing"):
        run_isolated(_raise_value_error, {"name": "b"}, what="calibration")
