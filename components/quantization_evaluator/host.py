"""What the latency was measured on: the evaluating host, which is rarely the device the model ships to."""

from __future__ import annotations

import os
import platform

LATENCY_NOTE = "measured on the evaluating host, not the target device"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def latency_host(tflite_threads: int | None = None) -> dict[str, object]:
    """CPU model, logical CPUs (all and usable by this process), the TFLite interpreter's threads (``None``: the
    interpreter's default, num_threads unset)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": _cpu_model(), "machine": platform.machine(), "logical_cpus": os.cpu_count(),
            "usable_cpus": usable, "tflite_threads": tflite_threads,
            "batch_size": 1, "note": LATENCY_NOTE}
