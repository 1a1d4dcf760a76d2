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

from components import QuantizationEvaluator
from components.quantization_evaluator import executor
from components.representative_dataset.storage import read_examples
from components.shared.signature_inputs import InputSpec, dense_signature_specs
from components.types import QuantizationEvaluation


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
    from components.shared.model_runners import TFLiteRunner

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
    (so parameters go through its checks and encoding) and runs its executor on the demo artifacts by default."""

    def run(name: str, *, model: Artifact | None = None, quantized_model: Artifact | None = None,
            examples: Artifact | None = None, **params: object) -> EvaluatorRun:
        component = QuantizationEvaluator(
            model=types.Channel(type=standard_artifacts.Model),
            quantized_model=types.Channel(type=standard_artifacts.Model),
            examples=types.Channel(type=standard_artifacts.Examples),
            **{"label_key": "species", **params},
        )
        root = tmp_path_factory.mktemp(name)
        evaluation, blessing = QuantizationEvaluation(), standard_artifacts.ModelBlessing()
        evaluation.uri, blessing.uri = str(root / "evaluation"), str(root / "blessing")
        for artifact in (evaluation, blessing):
            tf.io.gfile.makedirs(artifact.uri)  # the launcher creates output folders before Do
        executor.Executor().Do(
            {executor.MODEL_KEY: [model or demo_quantized.model],
             executor.QUANTIZED_MODEL_KEY: [quantized_model or demo_quantized.quantized_model],
             executor.EXAMPLES_KEY: [examples or demo_quantized.examples]},
            {executor.EVALUATION_KEY: [evaluation], executor.BLESSING_KEY: [blessing]},
            dict(component.exec_properties),
        )
        return EvaluatorRun(evaluation, blessing)

    return run

