"""Fixtures for QuantizationEvaluator's tests: the demo run's models and examples as TFX artifacts, and a helper that
runs the real executor (Beam DirectRunner) on them with the component's own execution properties."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import tensorflow as tf
from tfx import types
from tfx.types import Artifact, artifact_utils, standard_artifacts
from tfx.utils import path_utils

from quantgate.components import QuantizationEvaluator
from quantgate.components.quantization_evaluator import executor
from quantgate.components.quantization_evaluator.spec import candidate_key
from quantgate.components.representative_dataset_gen.storage import read_examples
from quantgate.components.shared.signature_inputs import InputSpec, dense_signature_specs
from quantgate.components.types import QuantizationEvaluation, RepresentativeDataset


def to_artifact(demo_run, proto: object) -> Artifact:
    """An MLMD artifact proto of the demo run as the TFX Artifact an executor receives."""
    (artifact_type,) = demo_run.store.get_artifact_types_by_id([proto.type_id])
    return artifact_utils.deserialize_artifact(artifact_type, proto)


@dataclass
class DemoQuantized:
    """The demo run's float model, the Quantizer's int8 model and the examples, with what tests need of them."""

    model: Artifact
    quantized_model: Artifact
    examples: Artifact
    saved_model_dir: str
    signature_name: str
    specs: list[InputSpec]
    tflite_path: str
    quant_output: str
    eval_records: list[bytes]
    calibration_records: list[bytes]


@pytest.fixture(scope="session")
def demo_quantized(demo_run) -> DemoQuantized:
    from quantgate.components.shared.model_runners import TFLiteRunner

    model = to_artifact(demo_run, demo_run.output("Trainer", "model"))
    quantized = to_artifact(demo_run, demo_run.output("Quantizer", "quantized_model"))
    examples = to_artifact(demo_run, demo_run.output("CsvExampleGen", "examples"))
    saved_model_dir = path_utils.serving_model_path(model.uri)
    signature_name, specs = dense_signature_specs(saved_model_dir, None)
    tflite_path = os.path.join(path_utils.serving_model_dir(quantized.uri), "model.tflite")
    files = tf.io.gfile.glob(os.path.join(examples.uri, "Split-eval", "*"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    (quant_output,) = TFLiteRunner(tflite_path).output_names
    calibration = read_examples(demo_run.output("RepresentativeDatasetGen", "representative_dataset").uri)
    return DemoQuantized(model, quantized, examples, saved_model_dir, signature_name, specs, tflite_path,
                         quant_output, records, calibration)


@dataclass
class EvaluatorRun:
    """The outputs of one executor run."""

    evaluation: Artifact
    blessing: Artifact

    def blessing_property(self, name: str) -> object:
        value = self.blessing.mlmd_artifact.custom_properties[name]
        return getattr(value, value.WhichOneof("value"))


RunEvaluator = Callable[..., EvaluatorRun]


@pytest.fixture(scope="session")
def run_evaluator(demo_quantized, tmp_path_factory) -> RunEvaluator:
    """``run_evaluator(name, model=..., quantized_model=..., examples=..., **component params)``: builds the component
    (so parameters go through its checks and encoding) and runs its executor on the demo artifacts by default.
    ``quantized_model`` may be a list of candidates, each wired to its own input key as the component does."""

    def run(name: str, *, model: Artifact | None = None, quantized_model: Artifact | list[Artifact] | None = None,
            examples: Artifact | None = None, search_dataset: Artifact | None = None,
            **params: object) -> EvaluatorRun:
        quantized = quantized_model or demo_quantized.quantized_model
        candidates = quantized if isinstance(quantized, list) else [quantized]
        component = QuantizationEvaluator(
            model=types.Channel(type=standard_artifacts.Model),
            quantized_model=[types.Channel(type=standard_artifacts.Model) for _ in candidates],
            examples=types.Channel(type=standard_artifacts.Examples),
            search_dataset=types.Channel(type=RepresentativeDataset) if search_dataset else None,
            **{"label_key": "species", **params},
        )
        root = tmp_path_factory.mktemp(name)
        evaluation, blessing = QuantizationEvaluation(), standard_artifacts.ModelBlessing()
        evaluation.uri, blessing.uri = str(root / "evaluation"), str(root / "blessing")
        for artifact in (evaluation, blessing):
            tf.io.gfile.makedirs(artifact.uri)  # the launcher creates output folders before Do
        executor.Executor().Do(
            {executor.MODEL_KEY: [model or demo_quantized.model],
             **{candidate_key(i): [c] for i, c in enumerate(candidates)},
             executor.EXAMPLES_KEY: [examples or demo_quantized.examples],
             **({executor.SEARCH_DATASET_KEY: [search_dataset]} if search_dataset else {})},
            {executor.EVALUATION_KEY: [evaluation], executor.BLESSING_KEY: [blessing]},
            dict(component.exec_properties),
        )
        return EvaluatorRun(evaluation, blessing)

    return run



def synthetic_report_metrics(blessed: bool) -> dict:
    """A metrics.json dict of one int8 candidate of a 3-class classifier, sliced by island, with every section."""
    def entry(float_acc: float, quant_acc: float | None, n: int) -> dict:
        delta = None if quant_acc is None else float_acc - quant_acc
        bounds = {"delta": delta, "lower": None if delta is None else delta - 0.02,
                  "upper": None if delta is None else delta + 0.03, "method": "newcombe_paired_score"}
        return {"num_examples": n, "float": {"accuracy": float_acc, "recall": {"0": 1.0, "1": 0.9, "2": 0.95}},
                "quantized": {"accuracy": quant_acc, "recall": {"0": 1.0, "1": 0.85, "2": 0.95}},
                "delta": delta, "delta_upper": bounds["upper"], "deltas": {"accuracy": bounds}, "agreement": 0.97,
                "confusion": {"float": [[40, 0, 0], [1, 30, 2], [0, 1, 26]],
                              "quantized": [[40, 0, 0], [2, 29, 2], [0, 1, 26]],
                              "disagreement": [[41, 1, 0], [0, 30, 0], [0, 0, 28]]}}

    return {
        "metric": "accuracy", "task": "classification", "split": "eval", "label_key": "species",
        "overall": entry(0.99, 0.98 if blessed else 0.5, 100),
        "slices": [{"feature": "island", "value": "Biscoe", **entry(1.0, 0.99, 50)},
                   {"feature": "island", "value": "<Dream>", **entry(0.97, None, 40)}],
        "skipped_slices": [{"feature": "island", "value": "Torgersen", "num_examples": 10}],
        "models": {"float": {"uri": "/m/float"},
                   "quantized": {"uri": "/m/quant", "id": 7, "quantization_mode": "int8", "evaluated_sha256": "ab12",
                                 "quantization_report": QUANTIZATION_REPORT}},
        "run": {"pipeline_name": "penguin", "run_id": "2026-12-01T20:00:00"},
        "latency_host": {"cpu": "Test CPU @ 2 GHz", "logical_cpus": 2, "usable_cpus": 2, "tflite_threads": None,
                         "note": "measured on the evaluating host, not the target device"},
        "sizes": {"float_bytes": None, "quantized_bytes": 6312, "float_tflite_bytes": 6316},
        "latency_ms": {"float": {"p50_ms": 1.2, "p95_ms": 3.0, "calls": 300},
                       "quantized": {"p50_ms": 0.2, "p95_ms": 0.3, "calls": 300}},
        "thresholds": {"metric": "accuracy", "max_delta": 0.01, "delta_type": "absolute", "min_slice_size": 30,
                       "max_slice_delta": 0.05, "min_agreement": None, "max_model_bytes": None,
                       "max_latency_ms": None, "extra_metrics": [], "delta_bound": "point", "confidence": 0.95,
                       "min_examples": 30},
        "verdict": {"blessed": blessed, "delta": 0.01 if blessed else 0.49, "threshold": 0.01, "delta_upper": 0.04,
                    "reason": "blessed: every threshold passed" if blessed else "not blessed: delta 0.49 > 0.01",
                    "reasons": [] if blessed else ["delta 0.49 > 0.01"],
                    "warnings": ["one flipped prediction moves the absolute accuracy delta by 0.0101"]},
    }


QUANTIZATION_REPORT = {
    "mode": "int8", "engine": "tflite_converter", "signature_name": "serving_features", "io_dtype": "int8",
    "representative_dataset": {"num_examples": 200, "uri": "/rep/4"}, "denylisted_ops": [],
    "allow_float_fallback": False, "sha256": "ab12",
    "sizes": {"float_tflite_bytes": 6316, "ratio_to_float_tflite": 0.9994, "tflite_bytes": 6312},
    "ops": {"by_dtype": {"int8": 13}, "ops": {"FULLY_CONNECTED": {"int8": 3}, "SOFTMAX": {"int8": 1}}},
    "input_steps": {"latitude": {"coarse": True, "step": 0.165, "std": 0.05, "step_over_std": 3.3,
                                 "distinct_levels": 3},
                    "bill_depth_mm": {"coarse": False, "step": 0.08}},
    "warnings": ["input latitude is coarse: normalize it before the model input"],
}


@pytest.fixture(scope="session")
def report_metrics() -> Callable[[bool], dict]:
    """``report_metrics(blessed)``: a fresh synthetic metrics.json dict for report tests (no pipeline)."""
    return synthetic_report_metrics
