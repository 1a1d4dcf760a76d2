"""isolation: a child that aborts becomes an error with its last stage and last log lines (TensorFlow's start-up
noise left out); the test process lives on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cloudpickle
import pytest

from quantgate.components.quantizer.isolation import (
    LOG_TAIL_LINES,
    STAGE_MARKER,
    IsolatedProcessError,
    converter_tail,
    last_stage,
    log_stage,
    run_isolated,
)

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


TF_START_UP_NOISE = [
    "2026-12-01 18:29:06.062163: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:479] Unable to register "
    "cuFFT factory: Attempting to register factory for plugin cuFFT when one has already been registered",
    "2026-12-01 18:29:06.078655: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:10575] Unable to register "
    "cuDNN factory: Attempting to register factory for plugin cuDNN when one has already been registered",
    "I0000 00:00:17.1 1 cpu_feature_guard.cc:210] This TensorFlow binary is optimized to use available CPU "
    "instructions in performance-critical operations.",
    "W0000 00:00:17.2 1 TF-TRT Warning: Could not find TensorRT",
]


def _segfault_in_a_stage(stage: str, converter_line: str) -> None:
    """Test-only child: TensorFlow's start-up noise, a converter line, a stage marker, then a real SIGSEGV."""
    for line in TF_START_UP_NOISE:
        print(line, file=sys.stderr)
    print(converter_line, file=sys.stderr, flush=True)
    log_stage(stage)
    for line in TF_START_UP_NOISE:  # noise after the converter's line must not push it out of the tail
        print(line, file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)


def test_a_segfault_names_the_last_stage_and_keeps_only_the_converters_lines() -> None:
    converter_line = "loc(fused[\"DenseBincount:\", \"model/category_encoding\"]): error: 'tf.DenseBincount' op failed"
    with pytest.raises(IsolatedProcessError) as error:
        run_isolated(_segfault_in_a_stage, {"stage": "converting signature 'ids' (int8)",
                                            "converter_line": converter_line}, what="int8 conversion")
    text = str(error.value)
    assert "killed by signal SIGSEGV" in text and "while converting signature 'ids' (int8). " in text
    assert converter_line in text
    for noise in ("cuFFT", "cuDNN", "Unable to register", "This TensorFlow binary", "TF-TRT", STAGE_MARKER):
        assert noise not in text
    assert f"({2 * len(TF_START_UP_NOISE) + 1} lines of TensorFlow start-up noise and stage markers left out)" in text


def test_the_tail_says_so_when_the_child_logged_only_noise() -> None:
    lines = [line + "\n" for line in TF_START_UP_NOISE]
    assert converter_tail(lines) == ("(the child logged nothing but TensorFlow start-up noise)\n"
                                     f"({len(lines)} lines of TensorFlow start-up noise and stage markers left out)\n")
    assert last_stage(lines) is None
    kept = [f"line {i}\n" for i in range(40)]
    assert converter_tail(kept) == "".join(kept[-LOG_TAIL_LINES:])  # nothing left out: no count line
    assert last_stage([f"{STAGE_MARKER}loading\n", "x\n", f"{STAGE_MARKER}calibrating on 3 examples\n"]) == \
        "calibrating on 3 examples"


def _child_facts() -> tuple[int, int, bool]:
    return os.getpid(), os.getppid(), "tensorflow" in sys.modules


def test_children_are_forked_from_one_warm_server_that_outlives_an_abort() -> None:
    first_pid, server, primed = run_isolated(_child_facts, {}, what="facts")
    assert primed and server != os.getpid()  # TensorFlow was imported once, by the server, before the fork
    with pytest.raises(IsolatedProcessError, match="SIGABRT"):
        run_isolated(_abort_after_logging, {"message": "x"}, what="abort")
    second_pid, same_server, _ = run_isolated(_child_facts, {}, what="facts")
    assert same_server == server and second_pid != first_pid  # a new process per call, the server reused


_PARENT_THAT_EXITS = """
import os, sys
from quantgate.components.quantizer.isolation import run_isolated
print(run_isolated(os.getppid, {}, what="server pid"), flush=True)
"""


def test_the_server_exits_with_its_parent() -> None:
    done = subprocess.run([sys.executable, "-c", _PARENT_THAT_EXITS], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    server = int(done.stdout.split()[-1])
    for _ in range(100):
        if not os.path.exists(f"/proc/{server}") or " Z " in open(f"/proc/{server}/stat").read():
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the fork server {server} outlived its parent")
