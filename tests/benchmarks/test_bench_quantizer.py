"""On-demand benchmark (``make bench``): the Quantizer's wall time on the demo with a cold conversion child (TensorFlow
imported for the call, as every call did before the fork server) against a warm one (forked from the primed server).

It runs the session's demo pipeline (``demo_run``; the local runner starts the server before the run), reads the
Quantizer's execution time from MLMD, then calls ``quantize`` on the same model and calibration set, cold and warm,
and writes ``tests/benchmarks/results/quantizer.json`` with the server's resident memory. Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import time

from quantgate.components.quantizer import isolation
from quantgate.components.quantizer.executor import quantize
from quantgate.components.quantizer.options import resolve_options

RESULTS = os.path.join(os.path.dirname(__file__), "results", "quantizer.json")


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


def test_cold_and_warm_conversion_child(demo_run, tmp_path) -> None:
    execution = demo_run.execution("Quantizer")
    in_demo_s = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
    model = demo_run.output("Trainer", "model").uri
    dataset = demo_run.output("RepresentativeDatasetGen", "representative_dataset").uri
    options = resolve_options("int8")

    def timed(name: str) -> float:
        start = time.perf_counter()
        quantize(model, dataset, str(tmp_path / name), options, "serving_features")
        return time.perf_counter() - start

    isolation._SERVER.stop()  # cold: the call starts the server, which imports TensorFlow, then forks
    cold_s = timed("cold")
    warm_s = [timed(f"warm{i}") for i in range(3)]
    server = isolation._SERVER._process
    results = {
        "machine": {"cpus": os.cpu_count()},
        "quantizer_execution_in_demo_s": in_demo_s,
        "quantize_cold_s": cold_s,
        "quantize_warm_s": warm_s,
        "cold_over_warm": cold_s / min(warm_s),
        "server_rss_mb": _rss_mb(server.pid) if server is not None else None,
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
