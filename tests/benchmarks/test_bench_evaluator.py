"""On-demand benchmark (``make bench``): the QuantizationEvaluator against what Beam needs to read the split, against
the stock TFX Evaluator (TFMA, ``model_type='tf_lite'``) on the same int8 model and split, and against a plain loop,
side by side in one process run. Writes ``tests/benchmarks/results/evaluator.json``.

Sizes: ``QUANTGATE_BENCH_SIZES`` (default ``100000,1000000``; e.g. ``20000,100000`` for a quick run); the stock
TFMA path runs at sizes up to ``QUANTGATE_BENCH_TFMA_MAX`` (default 100000: at 4-5k examples/s a 1M run takes
minutes and says nothing the 100k one does not). Generated data and models are kept in ``QUANTGATE_BENCH_DIR``
(default ``/tmp/quantgate-bench-evaluator``) between runs. Only ratios within one run are worth quoting: the machine
is shared and noisy. Nothing here asserts a speed.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import apache_beam as beam
import numpy as np
import psutil
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx import types
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.dsl.components.base import base_beam_executor
from tfx.types import Artifact, standard_artifacts
from tfx.utils import proto_utils
from tfx_bsl.public import tfxio

from quantgate.components import QuantizationEvaluator
from quantgate.components.quantization_evaluator import executor as qe_executor
from quantgate.components.quantization_evaluator.spec import (
    BLESSING_KEY,
    EVALUATION_KEY,
    EXAMPLES_KEY,
    MODEL_KEY,
    QUANTIZED_MODEL_KEY,
)
from quantgate.components.shared.model_runners import SavedModelRunner, TFLiteRunner
from quantgate.components.shared.signature_inputs import dense_signature_specs, examples_to_inputs
from quantgate.components.types import QuantizationEvaluation

sys.path.insert(0, os.path.dirname(__file__))
import taxi_like  # noqa: E402 (a helper beside this file, not a package)

RESULTS = os.path.join(os.path.dirname(__file__), "results", "evaluator.json")
SIZES = [int(s) for s in os.environ.get("QUANTGATE_BENCH_SIZES", "100000,1000000").split(",")]
TFMA_MAX = int(os.environ.get("QUANTGATE_BENCH_TFMA_MAX", "100000"))
ROOT = os.environ.get("QUANTGATE_BENCH_DIR", "/tmp/quantgate-bench-evaluator")
# Fixed costs measured directly: the whole Do on a split this small is almost nothing but set-up and outputs.
TINY = 1000
TWO_WORKERS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
PLAIN_BATCH = 4096


class PeakRss:
    """Peak resident memory (MiB) of this process plus its children while the block runs, sampled every 50 ms."""

    def __enter__(self) -> PeakRss:
        self._process = psutil.Process()
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._process.memory_info().rss + sum(c.memory_info().rss
                                                            for c in self._process.children(recursive=True))
            except psutil.Error:  # a child exited between listing and reading
                continue
            self.peak_mib = max(self.peak_mib, rss / 2**20)
            self._stop.wait(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _measure(fn: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    """(wall seconds and peak RSS of ``fn()``, its result)."""
    with PeakRss() as rss:
        start = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mib": rss.peak_mib}, value


def _patterns(examples: Artifact) -> list[str]:
    return [os.path.join(examples.uri, "Split-eval", "*")]


def beam_read_count(examples: Artifact, beam_args: list[str], root: str) -> int:
    """What Beam needs to read the split: the evaluator's own source, then a count (written to a file)."""
    prefix = os.path.join(root, "count")
    with beam.Pipeline(argv=beam_args) as p:
        _ = (p | tfxio.TFExampleRecord(_patterns(examples)).RawRecordBeamSource()
             | beam.combiners.Count.Globally() | beam.io.WriteToText(prefix, shard_name_template=""))
    with open(prefix) as f:
        return int(f.read())


def _output_artifacts(root: str) -> tuple[Artifact, Artifact]:
    shutil.rmtree(root, ignore_errors=True)
    evaluation, blessing = QuantizationEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = os.path.join(root, "evaluation"), os.path.join(root, "blessing")
    for artifact in (evaluation, blessing):
        os.makedirs(artifact.uri)
    return evaluation, blessing


def quantization_evaluator(examples: Artifact, model: Artifact, quantized: Artifact, root: str,
                           beam_args: list[str], timings: dict[str, float]) -> dict[str, Any]:
    """The executor as TFX runs it: constructed with the Beam args in its context, then ``Do``."""
    component = QuantizationEvaluator(model=types.Channel(type=standard_artifacts.Model),
                                      quantized_model=types.Channel(type=standard_artifacts.Model),
                                      examples=types.Channel(type=standard_artifacts.Examples),
                                      label_key=taxi_like.LABEL, metric="auc",
                                      slicing_feature_keys=[taxi_like.SLICE])
    evaluation, blessing = _output_artifacts(root)
    start = time.perf_counter()
    executor = qe_executor.Executor(base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=beam_args,
                                                                                tmp_dir=root))
    timings["construct_s"] = time.perf_counter() - start
    start = time.perf_counter()
    executor.Do({MODEL_KEY: [model], QUANTIZED_MODEL_KEY: [quantized], EXAMPLES_KEY: [examples]},
                {EVALUATION_KEY: [evaluation], BLESSING_KEY: [blessing]}, dict(component.exec_properties))
    timings["do_s"] = time.perf_counter() - start
    with open(os.path.join(evaluation.uri, "metrics.json")) as f:
        return json.load(f)


def _tfma_model(quantized: Artifact, root: str) -> Artifact:
    """The same int8 model where TFMA's tf_lite loader looks for it (``<serving dir>/tflite``)."""
    model = standard_artifacts.Model()
    model.uri, model.id = os.path.join(root, "tfma_model"), 4
    os.makedirs(os.path.join(model.uri, "Format-Serving"), exist_ok=True)
    shutil.copy(os.path.join(quantized.uri, "Format-Serving", "model.tflite"),
                os.path.join(model.uri, "Format-Serving", "tflite"))
    return model


def stock_tfma(examples: Artifact, quantized: Artifact, root: str, beam_args: list[str]) -> None:
    """TFX's Evaluator on the int8 model: the same metrics (example count, accuracy, AUC) and slices."""
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key=taxi_like.LABEL, model_type="tf_lite")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[taxi_like.SLICE])],
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount"),
                                                 tfma.MetricConfig(class_name="BinaryAccuracy"),
                                                 tfma.MetricConfig(class_name="AUC")])])
    shutil.rmtree(os.path.join(root, "tfma_out"), ignore_errors=True)
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = os.path.join(root, "tfma_out", "evaluation"), os.path.join(root, "tfma_out", "b")
    tfx_evaluator.Executor(base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=beam_args,
                                                                       tmp_dir=root)).Do(
        {"examples": [examples], "model": [_tfma_model(quantized, root)]},
        {"evaluation": [evaluation], "blessing": [blessing]},
        {"eval_config": proto_utils.proto_to_json(eval_config), "example_splits": json.dumps(["eval"])})


def plain_loop(examples: Artifact, model: Artifact, quantized: Artifact) -> int:
    """The limit on this machine: tf.data read, tfx_bsl decode (the shared input path), both models batched."""
    saved_model_dir = os.path.join(model.uri, "Format-Serving")
    _, specs = dense_signature_specs(saved_model_dir, taxi_like.SIGNATURE)
    float_runner = SavedModelRunner(saved_model_dir, taxi_like.SIGNATURE)
    quant_runner = TFLiteRunner(os.path.join(quantized.uri, "Format-Serving", "model.tflite"))
    files = sorted(glob.glob(_patterns(examples)[0]))
    n = 0
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(PLAIN_BATCH):
        inputs = examples_to_inputs(list(batch.numpy()), specs, source="plain loop")
        float_runner.predict(inputs)
        quant_runner.predict(inputs)
        n += len(batch)
    return n


def _fit(points: dict[int, float]) -> dict[str, float] | None:
    """``seconds = fixed + per_example * n`` through the smallest and the largest size."""
    if len(points) < 2:
        return None
    (n1, t1), (n2, t2) = min(points.items()), max(points.items())
    per_example = (t2 - t1) / (n2 - n1)
    return {"fixed_s": t1 - per_example * n1, "per_example_us": per_example * 1e6}


def test_evaluator_against_beam_tfma_and_a_plain_loop() -> None:
    logging.getLogger().setLevel(logging.WARNING)  # the runs log a lot; the JSON is the output
    models_root = os.path.join(ROOT, "models")
    runs: dict[str, Any] = {}
    tiny = taxi_like.write_examples(os.path.join(ROOT, f"n{TINY}", "examples"), TINY)
    first = taxi_like.write_examples(os.path.join(ROOT, f"n{max(SIZES)}", "examples"), max(SIZES))
    model, quantized = taxi_like.write_models(models_root, first)
    quantization_evaluator(tiny, model, quantized, os.path.join(ROOT, "warm"), [], {})  # imports, caches
    tiny_timings: dict[str, float] = {}
    tiny_run, _ = _measure(lambda: quantization_evaluator(tiny, model, quantized, os.path.join(ROOT, "tiny"), [],
                                                       tiny_timings))
    fixed = {"quantization_evaluator_do_s": tiny_timings["do_s"], "construct_s": tiny_timings["construct_s"],
             "examples": TINY, "peak_rss_mib": tiny_run["peak_rss_mib"]}
    for n in sorted(SIZES):
        examples = taxi_like.write_examples(os.path.join(ROOT, f"n{n}", "examples"), n)
        out = os.path.join(ROOT, f"n{n}", "out")
        run: dict[str, Any] = {}
        os.makedirs(out, exist_ok=True)
        run["beam_read_count"], counted = _measure(lambda: beam_read_count(examples, [], out))  # noqa: B023
        assert counted == n
        timings: dict[str, float] = {}
        run["quantization_evaluator"], metrics = _measure(
            lambda: quantization_evaluator(examples, model, quantized, out, [], timings))  # noqa: B023
        run["quantization_evaluator"].update(timings)
        assert metrics["overall"]["num_examples"] == n
        run["quantization_evaluator"]["auc"] = {k: metrics["overall"][k]["auc"] for k in ("float", "quantized")}
        run["quantization_evaluator"]["latency_ms"] = metrics["latency_ms"]
        run["plain_loop"], looped = _measure(lambda: plain_loop(examples, model, quantized))  # noqa: B023
        assert looped == n
        if n <= TFMA_MAX:
            run["stock_tfma_tf_lite"], _ = _measure(lambda: stock_tfma(examples, quantized, out, []))  # noqa: B023
        if n == max(SIZES):
            run["beam_read_count_2_workers"], _ = _measure(
                lambda: beam_read_count(examples, TWO_WORKERS, out))  # noqa: B023
            two: dict[str, float] = {}
            run["quantization_evaluator_2_workers"], two_metrics = _measure(
                lambda: quantization_evaluator(examples, model, quantized, out, TWO_WORKERS, two))  # noqa: B023
            run["quantization_evaluator_2_workers"].update(two)
            assert two_metrics["overall"] == metrics["overall"]  # the same numbers with two workers
        for entry in run.values():
            entry["examples_per_s"] = n / entry.get("do_s", entry["seconds"])
        count = run["beam_read_count"]["examples_per_s"]
        run["ratios"] = {
            "evaluator_do_over_beam_read_count": run["quantization_evaluator"]["examples_per_s"] / count,
            "evaluator_do_over_plain_loop": run["quantization_evaluator"]["examples_per_s"]
            / run["plain_loop"]["examples_per_s"],
        }
        if "stock_tfma_tf_lite" in run:
            run["ratios"]["evaluator_do_over_stock_tfma"] = (run["quantization_evaluator"]["examples_per_s"]
                                                             / run["stock_tfma_tf_lite"]["examples_per_s"])
        if "quantization_evaluator_2_workers" in run:
            run["ratios"]["evaluator_2_workers_over_1"] = (run["quantization_evaluator_2_workers"]["examples_per_s"]
                                                           / run["quantization_evaluator"]["examples_per_s"])
            run["ratios"]["beam_read_count_2_workers_over_1"] = (run["beam_read_count_2_workers"]["examples_per_s"]
                                                                 / count)
        runs[str(n)] = run
        print(f"n={n}: " + json.dumps(run["ratios"]), flush=True)
    results = {
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": os.getloadavg()[0]},
        "sizes": sorted(SIZES),
        "tfma_max": TFMA_MAX,
        "fixed_costs_measured_on_tiny_split": fixed,
        "fit_seconds_vs_examples": {
            what: _fit({int(n): r[what].get("do_s", r[what]["seconds"]) for n, r in runs.items() if what in r})
            for what in ("beam_read_count", "quantization_evaluator", "plain_loop", "stock_tfma_tf_lite")},
        "runs": runs,
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    assert np.isfinite(runs[str(max(SIZES))]["quantization_evaluator"]["examples_per_s"])
