"""On-demand benchmark (``make bench``): the QuantizationEvaluator on a MobileNet-class CNN over PNG image examples,
against a plain loop over the same split that decodes the PNGs through the same transform graph, runs the float
model and invokes the int8 interpreter (the limit); and the int8 model against the same function as float32 TFLite:
size and batch-1 kernel latency on this CPU. Writes ``tests/benchmarks/results/cnn.json``.

The model is the image pipeline's (``pipelines/images.py``: MobileNetV2, alpha 0.35, 32x32 RGB, exported as a TFX
Trainer exports it, quantized to int8 by the Quantizer from its derived Keras call), run once with the local runner
into ``QUANTGATE_BENCH_DIR`` (default ``/tmp/quantgate-bench-cnn``; TFX's cache makes later runs reuse it). The splits
are generated PNG digits (``images_data.render_image_records``): ``QUANTGATE_BENCH_CNN_EXAMPLES`` (default 5000) and
``QUANTGATE_BENCH_CNN_LARGE`` (default 80000, the headline: a split where the evaluator's fixed costs, about 1.5 s of
Beam start, model loads and batch-1 latency calls, no longer dominate; 0 skips it), the two sizes giving each path's
fixed and per-example cost. The headline is the examples/s ratio at the large size and the ratio of the per-example
costs (the throughput each path reaches on a split large enough to hide its fixed cost). The evaluator's own stages are timed by wrapping the executor's calls (checks, the Beam pass,
latency measurement, metrics, report and outputs; behaviour unchanged), and the Beam pass is split into the plain
loop's work, the serving-signature comparison (on the first ``SERVING_SAMPLE_PER_WORKER`` examples, on the float
runner's loaded SavedModel, as the evaluator does it) and the rest (Beam's own cost). Kernel latency is also measured on untrained MobileNetV2s at larger inputs (``QUANTGATE_BENCH_CNN_RESOLUTIONS``,
default ``96,224``), where the convolutions dominate an invoke.

Only ratios within one run are worth quoting: the machine is shared and noisy. Nothing here asserts a speed.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import resource
import shutil
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import Artifact, artifact_utils, standard_artifacts

from quantgate.components import QuantizationEvaluator
from quantgate.components.quantization_evaluator import executor as qe_executor
from quantgate.components.quantization_evaluator.beam_pipeline import BATCH_SIZE
from quantgate.components.quantization_evaluator.inference import (
    SERVING_SAMPLE_PER_WORKER,
    SerializedExamplesRunner,
)
from quantgate.components.quantization_evaluator.spec import (
    BLESSING_KEY,
    EVALUATION_KEY,
    EXAMPLES_KEY,
    MODEL_KEY,
    QUANTIZED_MODEL_KEY,
    TRANSFORM_GRAPH_KEY,
)
from quantgate.components.quantizer import float_reference
from quantgate.components.shared import properties
from quantgate.components.shared.model_runners import SavedModelRunner, TFLiteRunner
from quantgate.components.shared.signature_inputs import dense_signature_specs
from quantgate.components.shared.transform_inputs import TransformedInputs
from quantgate.components.types import QuantizationEvaluation
from quantgate.pipelines import kinds, lineage
from quantgate.pipelines.data import write_if_changed
from quantgate.pipelines.images import IMAGES_KIND, LABEL_KEY
from quantgate.pipelines.images_data import render_image_records, tfrecord_bytes
from quantgate.pipelines.local_runner import LocalRunConfig, LocalRunPaths, run_local

RESULTS = os.path.join(os.path.dirname(__file__), "results", "cnn.json")
ROOT = os.environ.get("QUANTGATE_BENCH_DIR", "/tmp/quantgate-bench-cnn")
NUM_EXAMPLES = int(os.environ.get("QUANTGATE_BENCH_CNN_EXAMPLES", "5000"))
LARGE = int(os.environ.get("QUANTGATE_BENCH_CNN_LARGE", "80000"))
RESOLUTIONS = [int(r) for r in os.environ.get("QUANTGATE_BENCH_CNN_RESOLUTIONS", "96,224").split(",") if r]
ARCHITECTURE = os.environ.get("QUANTGATE_BENCH_CNN_ARCHITECTURE", "mobilenet_v2")
# The evaluator's fixed costs (loading both models, batch-1 latency, report and outputs) measured on a split this
# small, so the large run's time can be split into fixed and per-example parts.
TINY = 500
PIPELINE_KWARGS = {"architecture": ARCHITECTURE, "train_steps": 300, "eval_steps": 5, "float_evaluator": False}
LATENCY_WARMUP, LATENCY_CALLS = 20, 300
# Each timed path runs this many times and the fastest counts: the machine is shared and one run can be slowed.
REPEATS = int(os.environ.get("QUANTGATE_BENCH_CNN_REPEATS", "2"))


def _artifact(store: Any, mlmd_artifact: Any) -> Artifact:
    """The TFX artifact (custom properties included: the evaluator checks the Quantizer's) of an MLMD artifact."""
    (artifact_type,) = store.get_artifact_types_by_id([mlmd_artifact.type_id])
    return artifact_utils.deserialize_artifact(artifact_type, mlmd_artifact)


def pipeline_outputs() -> dict[str, Artifact]:
    """Runs the image pipeline (cached after the first time) and returns the Trainer's model, the Transform graph and
    the Quantizer's int8 model."""
    paths = LocalRunPaths(home=os.path.join(ROOT, f"pipeline-{ARCHITECTURE}"), pipeline_name="images-bench")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(kinds.PIPELINES, IMAGES_KIND.name, IMAGES_KIND)
        run_local(LocalRunConfig(paths=paths, pipeline=IMAGES_KIND.name, pipeline_kwargs=PIPELINE_KWARGS))
    store = lineage.open_sqlite_store(paths.metadata_path, read_only=True)

    def output(component_id: str, key: str) -> Artifact:
        execution = lineage.latest_complete_execution(store, paths.pipeline_name, component_id)
        assert execution is not None, f"no COMPLETE execution of {component_id}"
        (artifact,) = lineage.output_artifacts(store, execution.id)[key]
        return _artifact(store, artifact)

    return {"model": output("Trainer", "model"), "transform_graph": output("Transform", "transform_graph"),
            "quantized": output("Quantizer", "quantized_model")}


def write_examples(n: int) -> Artifact:
    """An Examples artifact with one ``eval`` split of ``n`` PNG digit examples (written when its bytes change)."""
    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(ROOT, f"examples-n{n}")
    examples.split_names = '["eval"]'
    examples.id = 1
    write_if_changed(os.path.join(examples.uri, "Split-eval", "data_tfrecord-00000-of-00001.gz"),
                     tfrecord_bytes(render_image_records(n, seed=1)))
    return examples


def _records(examples: Artifact) -> tf.data.Dataset:
    files = sorted(tf.io.gfile.glob(os.path.join(examples.uri, "Split-eval", "*")))
    return tf.data.TFRecordDataset(files, compression_type="GZIP")


# The executor's calls timed in each run (wrapped, not changed), by the name the executor imports them under.
STAGES = ("check_inputs", "run_beam_evaluation", "measure_latency", "build_metrics", "write_evaluation_files")


def _time_stages(patch: pytest.MonkeyPatch) -> dict[str, float]:
    """Wraps the executor's ``STAGES`` so each call adds its seconds to the returned dict."""
    seconds = dict.fromkeys(STAGES, 0.0)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start
        return call

    for name in STAGES:
        patch.setattr(qe_executor, name, timed(name, getattr(qe_executor, name)))
    return seconds


def quantization_evaluator(examples: Artifact, outputs: dict[str, Artifact],
                           root: str) -> tuple[float, tuple[dict, dict[str, float]]]:
    """The executor as TFX runs it (DirectRunner, in-process): seconds of ``Do``, its metrics.json and the seconds
    of each of its ``STAGES``."""
    component = QuantizationEvaluator(
        model=types.Channel(type=standard_artifacts.Model),
        quantized_model=types.Channel(type=standard_artifacts.Model),
        examples=types.Channel(type=standard_artifacts.Examples),
        transform_graph=types.Channel(type=standard_artifacts.TransformGraph),
        label_key=LABEL_KEY, metric="accuracy", max_delta=0.02)
    evaluation, blessing = QuantizationEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = os.path.join(root, "evaluation"), os.path.join(root, "blessing")
    shutil.rmtree(root, ignore_errors=True)
    for artifact in (evaluation, blessing):
        os.makedirs(artifact.uri)
    executor = qe_executor.Executor(base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=[], tmp_dir=root))
    with pytest.MonkeyPatch.context() as patch:
        stages = _time_stages(patch)
        start = time.perf_counter()
        executor.Do({MODEL_KEY: [outputs["model"]], QUANTIZED_MODEL_KEY: [outputs["quantized"]],
                     EXAMPLES_KEY: [examples], TRANSFORM_GRAPH_KEY: [outputs["transform_graph"]]},
                    {EVALUATION_KEY: [evaluation], BLESSING_KEY: [blessing]}, dict(component.exec_properties))
        seconds = time.perf_counter() - start
    with open(os.path.join(evaluation.uri, properties.METRICS_FILENAME)) as f:
        return seconds, (json.load(f), stages)


class PlainLoop:
    """The limit: read the split in the evaluator's batches, decode through the transform graph, float model, int8
    interpreter, nothing else. Models and graph are loaded once (``load_s``); ``run`` times each phase."""

    def __init__(self, outputs: dict[str, Artifact]) -> None:
        start = time.perf_counter()
        self.saved_model_dir = os.path.join(outputs["model"].uri, "Format-Serving")
        self.signature_name, specs = dense_signature_specs(self.saved_model_dir, None)  # the derived Keras call
        self.float_runner = SavedModelRunner(self.saved_model_dir, self.signature_name)
        self.int8_runner = TFLiteRunner(os.path.join(outputs["quantized"].uri, properties.SERVING_DIR,
                                                     properties.TFLITE_FILENAME))
        self.transform = TransformedInputs(outputs["transform_graph"].uri, specs, source="the benchmark split")
        self.load_s = time.perf_counter() - start

    def run(self, examples: Artifact) -> dict[str, Any]:
        phases = dict.fromkeys(("read", "decode_transform", "float_model", "int8_interpreter"), 0.0)
        n, correct = 0, {"float": 0, "int8": 0}
        start = last = time.perf_counter()

        def lap(phase: str) -> None:
            nonlocal last
            now = time.perf_counter()
            phases[phase] += now - last
            last = now

        for batch in _records(examples).batch(BATCH_SIZE):
            records = list(batch.numpy())
            labels = np.array([tf.train.Example.FromString(r).features.feature[LABEL_KEY].int64_list.value[0]
                               for r in records])
            lap("read")
            inputs = self.transform(records)
            lap("decode_transform")
            (float_scores,) = self.float_runner.predict(inputs).values()
            lap("float_model")
            (int8_scores,) = self.int8_runner.predict(inputs).values()
            lap("int8_interpreter")
            correct["float"] += int(np.sum(float_scores.argmax(axis=1) == labels))
            correct["int8"] += int(np.sum(int8_scores.argmax(axis=1) == labels))
            n += len(records)
            last = time.perf_counter()  # the accuracy bookkeeping is no phase of the limit
        seconds = time.perf_counter() - start
        return {"examples": n, "seconds": seconds, "examples_per_s": n / seconds,
                "phases_s": {k: round(v, 4) for k, v in phases.items()},
                "outside_phases_s": round(seconds - sum(phases.values()), 4),
                "accuracy": {k: v / n for k, v in correct.items()}}

    def serving_signature_sample(self, examples: Artifact) -> dict[str, Any]:
        """What the evaluator's worker does beside the limit: the float model's ``serving_default`` (parse, the TFT
        layer decoding the PNGs again, the model again) on the first ``SERVING_SAMPLE_PER_WORKER`` examples, on the
        float runner's loaded SavedModel, for its agreement check."""
        runner = SerializedExamplesRunner(self.saved_model_dir, "serving_default", self.float_runner.loaded_model)
        n, start = 0, time.perf_counter()
        for batch in _records(examples).batch(BATCH_SIZE):
            if n >= SERVING_SAMPLE_PER_WORKER:
                break
            records = list(batch.numpy())[:SERVING_SAMPLE_PER_WORKER - n]
            runner.predict(records)
            n += len(records)
        seconds = time.perf_counter() - start
        return {"examples": n, "seconds": seconds, "examples_per_s": n / seconds}


def _latency(call: Callable[[], object]) -> dict[str, float]:
    """Batch-1 kernel latency (the invoke alone, inputs set once) after warm-up, in ms."""
    for _ in range(LATENCY_WARMUP):
        call()
    times = []
    for _ in range(LATENCY_CALLS):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
            "calls": LATENCY_CALLS}


def _kernel_latencies(paths: dict[str, str], inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Batch-1 kernel latency of each model at 1 and 2 interpreter threads (this machine has 2 cores)."""
    result: dict[str, Any] = {}
    for threads in (1, 2):
        latencies: dict[str, Any] = {}
        for name, path in paths.items():
            kernel = TFLiteRunner(path, num_threads=threads).kernel(inputs)
            assert kernel is not None
            latencies[name] = _latency(kernel)
        latencies["speedup_int8_p50"] = latencies["float32"]["p50_ms"] / latencies["int8"]["p50_ms"]
        result[f"threads{threads}"] = latencies
    return result


def int8_vs_float_tflite(loop: PlainLoop, examples: Artifact, outputs: dict[str, Artifact]) -> dict[str, Any]:
    """Sizes and batch-1 kernel latency of the pipeline's int8 model and of the same function as float32 TFLite
    (converted here as the Quantizer converts its float reference)."""
    float_path = os.path.join(ROOT, f"float32-{ARCHITECTURE}.tflite")
    start = time.perf_counter()
    float_content = float_reference.float_tflite(loop.saved_model_dir, loop.signature_name)
    float_seconds = time.perf_counter() - start
    with open(float_path, "wb") as f:
        f.write(float_content)
    int8_path = os.path.join(outputs["quantized"].uri, properties.SERVING_DIR, properties.TFLITE_FILENAME)
    one = loop.transform([next(iter(_records(examples).take(1))).numpy()])
    result: dict[str, Any] = {"float32_tflite_bytes": len(float_content), "int8_tflite_bytes": os.path.getsize(int8_path),
                              "float32_conversion_s": float_seconds}
    result["size_ratio_int8_over_float32"] = result["int8_tflite_bytes"] / result["float32_tflite_bytes"]
    result["kernel_latency_batch1"] = _kernel_latencies({"float32": float_path, "int8": int8_path}, one)
    return result


def latency_by_resolution(resolution: int) -> dict[str, Any]:
    """An untrained MobileNetV2 (alpha 0.35, 10 classes) at ``resolution`` x ``resolution`` as float32 and as
    full-integer int8 TFLite (calibrated on random images: the weights' values do not change the kernels' cost)."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(resolution, resolution, 3), alpha=0.35, weights=None,
                                           classes=10)
    images = np.random.default_rng(0).random((16, resolution, resolution, 3), dtype=np.float32)
    paths = {}
    for name in ("float32", "int8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if name == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image[None]] for image in images)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
        paths[name] = os.path.join(ROOT, f"mobilenet_v2-{resolution}-{name}.tflite")
        with open(paths[name], "wb") as f:
            f.write(converter.convert())
    (input_name,) = [spec.name for spec in TFLiteRunner(paths["int8"]).input_specs]
    result: dict[str, Any] = {name: {"tflite_bytes": os.path.getsize(path)} for name, path in paths.items()}
    result["size_ratio_int8_over_float32"] = result["int8"]["tflite_bytes"] / result["float32"]["tflite_bytes"]
    result["kernel_latency_batch1"] = _kernel_latencies(paths, {input_name: images[:1]})
    return result


def saved_model_load(saved_model_dir: str) -> dict[str, Any]:
    """What one ``tf.saved_model.load`` of the float model costs, and the size of its function library (a Keras
    model saved with ``tf.saved_model.save`` keeps every layer's traced calls)."""
    start = time.perf_counter()
    tf.saved_model.load(saved_model_dir)
    seconds = time.perf_counter() - start
    graph = loader_impl.parse_saved_model(saved_model_dir).meta_graphs[0].graph_def
    return {"seconds": seconds, "library_functions": len(graph.library.function)}


def _fit(points: dict[int, float]) -> dict[str, float] | None:
    """``seconds = fixed + per_example * n`` through the smallest and the largest size."""
    if len(points) < 2:
        return None
    (n1, t1), (n2, t2) = min(points.items()), max(points.items())
    per_example = (t2 - t1) / (n2 - n1)
    return {"fixed_s": t1 - per_example * n1, "per_example_us": per_example * 1e6}


def _best(fn: Callable[[], tuple[float, Any]], repeats: int) -> tuple[float, Any]:
    """The fastest of ``repeats`` timed calls (after a full garbage collection each: a collection of the objects
    earlier runs left would otherwise land inside whichever phase triggers it) and that call's result."""
    best: tuple[float, Any] | None = None
    for _ in range(repeats):
        gc.collect()
        seconds, value = fn()
        if best is None or seconds < best[0]:
            best = (seconds, value)
    assert best is not None
    return best


def run_size(n: int, outputs: dict[str, Artifact], loop: PlainLoop) -> dict[str, Any]:
    """Everything at one split size, each the best of ``REPEATS``: the evaluator (its stages timed), the plain loop
    (warmed on the same split first: its batch shapes) and the serving-signature sample alone."""
    examples = write_examples(n)
    run: dict[str, Any] = {}
    do_s, (metrics, stages) = _best(
        lambda: quantization_evaluator(examples, outputs, os.path.join(ROOT, f"out-{n}")), REPEATS)
    assert metrics["overall"]["num_examples"] == n
    run["quantization_evaluator"] = {
        "do_s": do_s, "examples_per_s": n / do_s,
        "accuracy": {k: metrics["overall"][k]["accuracy"] for k in ("float", "quantized")},
        "blessed": metrics["verdict"]["blessed"], "latency_ms": metrics["latency_ms"],
        "serving_signature_agreement": metrics.get("serving_signature_agreement"),
        "stages_s": stages}
    loop.run(examples)
    _, run["plain_loop"] = _best(lambda: (lambda r: (r["seconds"], r))(loop.run(examples)), REPEATS)
    _, run["serving_signature_sample"] = _best(
        lambda: (lambda r: (r["seconds"], r))(loop.serving_signature_sample(examples)), REPEATS)
    plain_s, serving_s = run["plain_loop"]["seconds"], run["serving_signature_sample"]["seconds"]
    beam_s = stages["run_beam_evaluation"]
    run["ratios"] = {
        "evaluator_do_over_plain_loop": plain_s / do_s,
        # the loop plus the serving-signature sample the evaluator also runs, over the evaluator
        "plain_loop_plus_serving_sample_over_evaluator_do": (plain_s + serving_s) / do_s,
        "plain_loop_over_evaluator_beam_pass": plain_s / beam_s,
    }
    run["where_the_evaluator_time_goes_s"] = {
        "checks (float SavedModel and int8 loaded, serving signature found)": stages["check_inputs"],
        "beam: plain loop (read, decode through the transform, float model, int8 interpreter)": plain_s,
        f"beam: serving signature on the first {SERVING_SAMPLE_PER_WORKER} examples": serving_s,
        "beam: rest (pipeline start, read, batching, metrics combine, writes)": beam_s - plain_s - serving_s,
        "latency measurement (batch 1, both models)": stages["measure_latency"],
        "metrics and report (build_metrics, write_evaluation_files)": (stages["build_metrics"]
                                                                       + stages["write_evaluation_files"]),
        "rest of Do (executor setup, staging, blessing, properties)": do_s - sum(stages.values()),
    }
    print(f"n={n}: " + json.dumps(run["ratios"]), flush=True)
    return run


def test_evaluator_on_a_cnn_against_a_plain_loop() -> None:
    logging.getLogger().setLevel(logging.WARNING)  # the runs log a lot; the JSON is the output
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    load_at_start = os.getloadavg()[0]
    outputs = pipeline_outputs()
    with open(os.path.join(outputs["quantized"].uri, properties.QUANTIZATION_REPORT_FILENAME)) as f:
        report = json.load(f)
    tiny = write_examples(TINY)
    quantization_evaluator(tiny, outputs, os.path.join(ROOT, "warm"))  # imports, traces, the float runner's cache
    tiny_s, (_, tiny_stages) = quantization_evaluator(tiny, outputs, os.path.join(ROOT, "tiny"))
    loop = PlainLoop(outputs)
    sizes = sorted({NUM_EXAMPLES, LARGE} - {0})
    runs = {str(n): run_size(n, outputs, loop) for n in sizes}
    fits = {what: _fit({n: runs[str(n)][what].get("do_s", runs[str(n)][what].get("seconds")) for n in sizes})
            for what in ("quantization_evaluator", "plain_loop", "serving_signature_sample")}
    for what in ("checks (float SavedModel and int8 loaded, serving signature found)",
                 "beam: rest (pipeline start, read, batching, metrics combine, writes)"):
        fits[what] = _fit({n: runs[str(n)]["where_the_evaluator_time_goes_s"][what] for n in sizes})
    headline_n = max(sizes)
    headline = runs[str(headline_n)]
    evaluator_fit, loop_fit = fits["quantization_evaluator"], fits["plain_loop"]
    results = {
        "date": started,
        "command": ("TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m pytest -q -s -p no:warnings "
                    "tests/benchmarks/test_bench_cnn.py"),
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_start": load_at_start},
        "model": {"architecture": ARCHITECTURE, "input": report["inputs"], "signature_source": report["signature_source"],
                  "float_ops": report["ops"]["float_op_count"], "ops_by_dtype": report["ops"]["by_dtype"]},
        "batch_size": BATCH_SIZE,
        "serving_sample_per_worker": SERVING_SAMPLE_PER_WORKER,
        "goal_evaluator_over_plain_loop": 0.8,
        "headline_examples": headline_n,
        "headline_ratios": {
            **headline["ratios"],
            "per_example_cost_plain_loop_over_evaluator": (loop_fit["per_example_us"] / evaluator_fit["per_example_us"]
                                                           if evaluator_fit and loop_fit else None)},
        "small_split_examples": min(sizes),
        "small_split_ratios": runs[str(min(sizes))]["ratios"],
        "fixed_costs": {"evaluator_do_on_tiny_split_s": tiny_s, "tiny_examples": TINY,
                        "evaluator_stages_on_tiny_split_s": tiny_stages,
                        "plain_loop_load_s": loop.load_s,
                        "float_saved_model_load": saved_model_load(loop.saved_model_dir)},
        "fit_seconds_vs_examples": fits,
        "runs": runs,
        "int8_vs_float32_tflite": int8_vs_float_tflite(loop, tiny, outputs),
        "kernel_latency_by_resolution_untrained_mobilenet_v2": {str(r): latency_by_resolution(r)
                                                               for r in RESOLUTIONS},
    }
    results["machine"].update({"load_avg_1m_at_end": os.getloadavg()[0],
                               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    assert np.isfinite(headline["quantization_evaluator"]["examples_per_s"])
