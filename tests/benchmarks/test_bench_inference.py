"""On-demand benchmark (``make bench``): float SavedModel vs int8 TFLite on this machine, side by side in one run.

It reads the models and the eval split of the demo run in ``out/demo`` (``quantgate run --pipeline penguin`` first) and writes
``tests/benchmarks/results/inference.json``. Only ratios measured in the same run are worth quoting: the machine is
shared and noisy. Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf

from quantgate.components.shared.model_runners import SavedModelRunner, TFLiteRunner, quantize_array
from quantgate.components.shared.signature_inputs import dense_signature_specs, examples_to_inputs

RESULTS = os.path.join(os.path.dirname(__file__), "results", "inference.json")
NUM_EXAMPLES = 20_000
BATCH = 256
LATENCY_CALLS = 500


def _timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best of ``repeat`` wall times in seconds (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _latency_ms(predict: Callable[[dict], object], one: dict[str, np.ndarray]) -> dict[str, float]:
    for _ in range(50):
        predict(one)
    samples = []
    for _ in range(LATENCY_CALLS):
        start = time.perf_counter()
        predict(one)
        samples.append((time.perf_counter() - start) * 1e3)
    return {"p50": float(np.percentile(samples, 50)), "p95": float(np.percentile(samples, 95))}


@pytest.fixture(scope="module")
def demo_artifacts(demo_output_uri: Callable[[str, str], str]) -> dict[str, str]:
    uri = demo_output_uri
    return {
        "examples": uri("CsvExampleGen", "examples"),
        "model": os.path.join(uri("Trainer", "model"), "Format-Serving"),
        "tflite": os.path.join(uri("Quantizer", "quantized_model"), "Format-Serving", "model.tflite"),
    }


def test_float_vs_int8(demo_artifacts: dict[str, str]) -> None:
    files = tf.io.gfile.glob(os.path.join(demo_artifacts["examples"], "Split-eval", "*"))
    eval_examples = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    serialized = (eval_examples * (NUM_EXAMPLES // len(eval_examples) + 1))[:NUM_EXAMPLES]
    _, specs = dense_signature_specs(demo_artifacts["model"], "serving_features")
    float_model = SavedModelRunner(demo_artifacts["model"], "serving_features")
    int8_model = TFLiteRunner(demo_artifacts["tflite"], num_threads=1)

    decode_s = _timed(lambda: [examples_to_inputs(serialized[i:i + BATCH], specs, source="bench")
                               for i in range(0, NUM_EXAMPLES, BATCH)])
    batches = [examples_to_inputs(serialized[i:i + BATCH], specs, source="bench") for i in range(0, NUM_EXAMPLES, BATCH)]
    float_s = _timed(lambda: [float_model.predict(b) for b in batches])
    int8_s = _timed(lambda: [int8_model.predict(b) for b in batches])

    # Quantizing the inputs: one vectorized call per batch (what the runners do) vs one call per example
    # (the shape of TFMA's per-example TFLite path).
    details = int8_model.input_details
    def quantize_batched() -> None:
        for b in batches:
            for name, d in details.items():
                quantize_array(b[name], *d["quantization"], d["dtype"])
    def quantize_per_example() -> None:
        for b in batches[:10]:
            for row in range(len(b[specs[0].name])):
                for name, d in details.items():
                    quantize_array(b[name][row:row + 1], *d["quantization"], d["dtype"])
    batched_q_s = _timed(quantize_batched)
    per_example_q_s = _timed(quantize_per_example, repeat=1) * len(batches) / 10

    one = {k: v[:1] for k, v in batches[0].items()}
    results = {
        "machine": {"cpus": os.cpu_count()},
        "num_examples": NUM_EXAMPLES,
        "batch_size": BATCH,
        "examples_per_s": {
            "decode (tfx_bsl, shared input path)": NUM_EXAMPLES / decode_s,
            "float SavedModel predict": NUM_EXAMPLES / float_s,
            "int8 TFLite predict (1 thread)": NUM_EXAMPLES / int8_s,
        },
        "int8_over_float_throughput": float_s / int8_s,
        "input_quantization_s": {"batched": batched_q_s, "per_example": per_example_q_s,
                                 "per_example_over_batched": per_example_q_s / batched_q_s},
        "batch1_latency_ms": {"float SavedModel": _latency_ms(float_model.predict, one),
                              "int8 TFLite": _latency_ms(int8_model.predict, one)},
        "size_bytes": {
            "float SavedModel variables": sum(
                os.path.getsize(os.path.join(root, f))
                for root, _, fs in os.walk(os.path.join(demo_artifacts["model"], "variables")) for f in fs),
            "int8 TFLite": os.path.getsize(demo_artifacts["tflite"]),
        },
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
