"""On-demand benchmark (``make bench``): honest sizes of every mode on the demo's penguin model, and what the
float32 TFLite reference costs the Quantizer (one more ``convert()`` in the same child), side by side in one run.

It reads the Trainer's model and the calibration set of the demo run in ``out/demo`` (``quantgate run --pipeline penguin`` first), quantizes
in each mode through ``executor.quantize`` (the real child process) and writes ``tests/benchmarks/results/sizes.json``.
Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import pytest

from quantgate.components.quantizer import executor
from quantgate.components.quantizer.options import resolve_options

RESULTS = os.path.join(os.path.dirname(__file__), "results", "sizes.json")
CASES = (("int8", "tflite_converter"), ("int16x8", "tflite_converter"), ("dynamic_range", "tflite_converter"),
         ("float16", "tflite_converter"), ("int8", "litert_quantizer"))


@pytest.fixture(scope="module")
def demo_inputs(demo_output_uri: Callable[[str, str], str]) -> dict[str, str]:
    return {"model": demo_output_uri("Trainer", "model"),
            "representative": demo_output_uri("RepresentativeDatasetGen", "representative_dataset")}


def test_sizes_against_the_float_tflite_and_the_reference_cost(demo_inputs: dict[str, str], tmp_path) -> None:
    rows = {}
    for mode, engine in CASES:
        options = resolve_options(mode, engine=engine)
        start = time.monotonic()
        report = executor.quantize(demo_inputs["model"], demo_inputs["representative"], str(tmp_path / f"{mode}-{engine}"),
                                   options, "serving_features")
        wall = time.monotonic() - start
        sizes = report["sizes"]
        rows[f"{mode} ({engine})"] = {
            "tflite_bytes": sizes["tflite_bytes"],
            "float_tflite_bytes": sizes["float_tflite_bytes"],
            "float_variables_bytes": sizes["float_variables_bytes"],
            "float_saved_model_bytes": sizes["float_saved_model_bytes"],
            "ratio_to_float_tflite": sizes["ratio_to_float_tflite"],
            "ratio_to_float_variables": round(sizes["tflite_bytes"] / sizes["float_variables_bytes"], 4),
            "not_smaller_than_float": sizes["not_smaller_than_float"],
            "integer_only_ready": report["edge_tpu_readiness"]["ready"],
            "readiness_reasons": report["edge_tpu_readiness"]["reasons"],
            "conversion_seconds": report["conversion_seconds"],
            "float_tflite_seconds": report["float_tflite_seconds"],
            "quantize_wall_seconds": round(wall, 2),
            "reference_share_of_wall": round(report["float_tflite_seconds"] / wall, 4),
        }
    results = {"machine": {"cpus": os.cpu_count()}, "model": "penguin serving_features (demo run)", "modes": rows}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
