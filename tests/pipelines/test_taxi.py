"""The taxi pipeline, one real local run of the whole DAG (module-scoped): Transform, the float Evaluator, and the
quantgate components wired to the transform graph (the Quantizer, the QuantizationEvaluator and the pusher take
``transform_graph``); many facts are checked on that one run.

Besides the pipeline's own outputs, it measures, with the shared input path and runners (no Beam): the dense
``serving_features`` path (raw examples -> ``TransformedInputs`` -> ``SavedModelRunner``) against the model's own
``serving_default`` (serialized examples -> TFT layer -> model), and a manual full-int8 conversion of
``serving_features`` calibrated on the representative dataset through the transform, AUC against the float model's on
the eval split. The numbers are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from sklearn.metrics import roc_auc_score
from tfx import v1 as tfx

from quantgate.components.representative_dataset_gen.storage import read_examples
from quantgate.components.shared import properties
from quantgate.components.shared.model_runners import SavedModelRunner, TFLiteRunner
from quantgate.components.shared.signature_inputs import InputSpec, dense_signature_specs
from quantgate.components.shared.transform_inputs import TransformedInputs, vocabulary_files
from quantgate.pipelines import lineage
from quantgate.pipelines.local_runner import LocalRunPaths, direct_runner_args
from quantgate.pipelines.models.taxi import taxi_trainer, taxi_transform
from quantgate.pipelines.taxi import create_taxi_pipeline
from quantgate.pipelines.taxi_data import write_taxi_csv

PIPELINE_NAME = "taxi-quantgate"
COMPONENTS = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer", "Evaluator",
              "RepresentativeDatasetGen", "Quantizer", "QuantizationEvaluator", "QuantizedModelPusher")
QUANTGATE = ("Quantizer", "QuantizationEvaluator", "QuantizedModelPusher")
MAX_AUC_DELTA = 0.01
BATCH = 1024


@dataclass
class TaxiRun:
    paths: LocalRunPaths
    store: metadata_store.MetadataStore

    def output(self, component_id: str, key: str) -> metadata_store_pb2.Artifact:
        execution = lineage.latest_complete_execution(self.store, PIPELINE_NAME, component_id)
        assert execution is not None, f"no COMPLETE execution of {component_id}"
        (artifact,) = lineage.output_artifacts(self.store, execution.id)[key]
        return artifact

    @property
    def model_dir(self) -> str:
        return os.path.join(self.output("Trainer", "model").uri, "Format-Serving")

    @property
    def transform_graph(self) -> str:
        return self.output("Transform", "transform_graph").uri

    def properties_of(self, component_id: str, key: str) -> dict:
        return {k: lineage.plain(v) for k, v in self.output(component_id, key).custom_properties.items()}


@pytest.fixture(scope="module")
def taxi_run(tmp_path_factory: pytest.TempPathFactory) -> TaxiRun:
    paths = LocalRunPaths(home=str(tmp_path_factory.mktemp("taxi")), pipeline_name=PIPELINE_NAME)
    write_taxi_csv(paths.data_root)
    pipeline = create_taxi_pipeline(
        PIPELINE_NAME, paths.pipeline_root, paths.data_root,
        beam_pipeline_args=direct_runner_args(),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path),
        push_destination=paths.serving_model_dir,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return TaxiRun(paths=paths, store=lineage.open_sqlite_store(paths.metadata_path))


def _records(uri: str, split: str) -> list[bytes]:
    files = tf.io.gfile.glob(os.path.join(uri, f"Split-{split}", "*"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _batched(function, serialized: list[bytes]) -> dict[str, np.ndarray]:
    parts = [function(serialized[i:i + BATCH]) for i in range(0, len(serialized), BATCH)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _transformed_names() -> list[str]:
    keys = (*taxi_transform.DENSE_FLOAT_FEATURE_KEYS, *taxi_transform.VOCAB_FEATURE_KEYS,
            *taxi_transform.BUCKET_FEATURE_KEYS)
    return sorted(taxi_transform.transformed_name(k) for k in keys)


@pytest.mark.parametrize("component_id", COMPONENTS)
def test_every_component_completes(taxi_run: TaxiRun, component_id: str) -> None:
    assert lineage.latest_complete_execution(taxi_run.store, PIPELINE_NAME, component_id) is not None


def test_default_dag_wires_the_transform_graph_into_quantgate(tmp_path) -> None:
    pipeline = create_taxi_pipeline("taxi", str(tmp_path / "root"), str(tmp_path / "data"))
    assert sorted(c.id for c in pipeline.components) == sorted(COMPONENTS)
    by_id = {c.id: c for c in pipeline.components}
    for component_id in QUANTGATE:
        graph = by_id[component_id].inputs[properties.TRANSFORM_GRAPH_KEY]
        assert (graph.producer_component_id, graph.output_key) == ("Transform", "transform_graph"), component_id
    # raw examples: the transform graph makes the model's inputs (and the label tips_xf) from them
    for component_id in ("RepresentativeDatasetGen", "QuantizationEvaluator"):
        examples = by_id[component_id].inputs[properties.EXAMPLES_KEY]
        assert (examples.producer_component_id, examples.output_key) == ("CsvExampleGen", "examples"), component_id


def test_transform_outputs_exist(taxi_run: TaxiRun) -> None:
    graph = taxi_run.transform_graph
    for folder in ("transform_fn", "transformed_metadata", "metadata"):
        assert tf.io.gfile.isdir(os.path.join(graph, folder)), folder
    assert set(vocabulary_files(graph)) == {"payment_type", "company"}
    transformed = taxi_run.output("Transform", "transformed_examples").uri
    assert _records(transformed, "train") and _records(transformed, "eval")


def test_float_evaluator_blesses_the_model(taxi_run: TaxiRun) -> None:
    blessing = taxi_run.output("Evaluator", "blessing")
    assert blessing.custom_properties["blessed"].int_value == 1


def test_model_signatures(taxi_run: TaxiRun) -> None:
    loaded = tf.saved_model.load(taxi_run.model_dir)
    assert {"serving_default", taxi_trainer.TRANSFORM_SIGNATURE, taxi_trainer.DENSE_SIGNATURE} <= set(loaded.signatures)
    name, specs = dense_signature_specs(taxi_run.model_dir, None)  # the only dense numeric signature
    assert name == taxi_trainer.DENSE_SIGNATURE
    assert [s.name for s in specs] == _transformed_names()
    for spec in specs:
        assert spec.shape == (None, 1)
        expected = np.float32 if spec.name.removesuffix("_xf") in taxi_transform.DENSE_FLOAT_FEATURE_KEYS else np.int32
        assert spec.dtype == expected, spec


def test_serving_features_agree_with_serving_default_and_int8_auc(taxi_run: TaxiRun, tmp_path) -> None:
    eval_examples = _records(taxi_run.output("CsvExampleGen", "examples").uri, "eval")
    graph = taxi_run.transform_graph
    runner = SavedModelRunner(taxi_run.model_dir, taxi_trainer.DENSE_SIGNATURE)
    transformed = TransformedInputs(graph, runner.input_specs, source="CsvExampleGen eval")
    labels = _batched(TransformedInputs(graph, [InputSpec(taxi_trainer.LABEL_KEY, np.dtype(np.int64), (None, 1))]),
                      eval_examples)[taxi_trainer.LABEL_KEY][:, 0]
    inputs = _batched(transformed, eval_examples)

    # the dense path against the model's own serving signature
    features_path = runner.predict(inputs)[taxi_trainer.OUTPUT_KEY][:, 0]
    loaded = tf.saved_model.load(taxi_run.model_dir)
    serving = loaded.signatures["serving_default"]
    serving_path = np.concatenate([
        serving(tf.constant(eval_examples[i:i + BATCH]))[taxi_trainer.OUTPUT_KEY].numpy()[:, 0]
        for i in range(0, len(eval_examples), BATCH)])
    max_abs_diff = float(np.max(np.abs(features_path - serving_path)))
    agreement = float(np.mean((features_path > 0.5) == (serving_path > 0.5)))

    # a manual full-int8 conversion, calibrated on the representative dataset through the transform
    calibration = transformed(read_examples(taxi_run.output("RepresentativeDatasetGen", "representative_dataset").uri))
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [loaded.signatures[taxi_trainer.DENSE_SIGNATURE]], loaded)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    n_calibration = len(next(iter(calibration.values())))
    converter.representative_dataset = lambda: (
        {name: values[i:i + 1] for name, values in calibration.items()} for i in range(n_calibration))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    model_path = tmp_path / "model.tflite"
    model_path.write_bytes(converter.convert())
    tflite = TFLiteRunner(str(model_path))
    int8_path = tflite.predict(inputs)[taxi_trainer.OUTPUT_KEY][:, 0]
    input_dtypes = {name: d["dtype"].__name__ for name, d in tflite.input_details.items()}

    float_auc = float(roc_auc_score(labels, features_path))
    int8_auc = float(roc_auc_score(labels, int8_path))
    measured = {
        "eval_examples": len(eval_examples), "positives": int(labels.sum()), "calibration_examples": n_calibration,
        "serving_default_vs_serving_features_max_abs_diff": max_abs_diff,
        "serving_default_vs_serving_features_label_agreement": agreement,
        "float_auc": float_auc, "int8_auc": int8_auc, "auc_delta": float_auc - int8_auc,
        "float_vs_int8_label_agreement": float(np.mean((features_path > 0.5) == (int8_path > 0.5))),
        "int8_max_abs_prob_diff": float(np.max(np.abs(features_path - int8_path))),
        "tflite_bytes": model_path.stat().st_size, "tflite_input_dtypes": input_dtypes,
    }
    print("\ntaxi measurements:", json.dumps(measured, indent=1, sort_keys=True))

    assert max_abs_diff < 1e-5 and agreement == 1.0
    assert all(input_dtypes[n] == ("int8" if n.removesuffix("_xf") in taxi_transform.DENSE_FLOAT_FEATURE_KEYS
                                   else "int32") for n in input_dtypes)
    assert abs(float_auc - int8_auc) <= MAX_AUC_DELTA


def test_quantized_model_names_its_transform_graph(taxi_run: TaxiRun) -> None:
    graph = taxi_run.output("Transform", "transform_graph")
    quantized = taxi_run.properties_of("Quantizer", "quantized_model")
    assert quantized[properties.TRANSFORM_GRAPH_ID] == graph.id
    assert quantized[properties.TRANSFORM_GRAPH_URI] == graph.uri
    assert quantized[properties.SIGNATURE_NAME] == taxi_trainer.DENSE_SIGNATURE


def test_int8_auc_is_within_the_budget_and_pushed(taxi_run: TaxiRun) -> None:
    evaluation = taxi_run.properties_of("QuantizationEvaluator", "evaluation")
    float_auc = evaluation[properties.float_metric("auc")]
    int8_auc = evaluation[properties.quantized_metric("auc")]
    quantized = taxi_run.properties_of("Quantizer", "quantized_model")
    print("\ntaxi pipeline:", json.dumps({
        "float_auc": float_auc, "int8_auc": int8_auc, "eval_examples": evaluation.get(properties.NUM_EXAMPLES),
        "int8_bytes": quantized[properties.SIZE_BYTES], "float_bytes": quantized[properties.FLOAT_SIZE_BYTES],
        "coarse_inputs": quantized.get(properties.COARSE_INPUT_COUNT)}, sort_keys=True))
    assert 0.9 < float_auc <= 1.0 and abs(float_auc - int8_auc) <= MAX_AUC_DELTA
    assert evaluation[properties.NUM_EXAMPLES] == len(_records(taxi_run.output("CsvExampleGen", "examples").uri,
                                                               "eval"))
    assert taxi_run.properties_of("QuantizationEvaluator", "blessing")[properties.BLESSED] == 1
    assert taxi_run.properties_of("QuantizedModelPusher", "pushed_model")[properties.PUSHED] == 1


def test_the_pushed_version_carries_vocabularies_and_the_transform_graph(taxi_run: TaxiRun) -> None:
    version = taxi_run.properties_of("QuantizedModelPusher", "pushed_model")[properties.PUSHED_DESTINATION]
    graph = taxi_run.output("Transform", "transform_graph")
    with open(os.path.join(version, properties.PUSH_MANIFEST_FILENAME)) as f:
        manifest = json.load(f)
    assert manifest[properties.TRANSFORM_GRAPH_KEY] == {"id": graph.id, "uri": graph.uri}
    assert sorted(v["name"] for v in manifest["vocabularies"]) == sorted(vocabulary_files(graph.uri))
    assert sorted(i["name"] for i in manifest["io"]["inputs"]) == _transformed_names()
    vocabularies = os.path.join(version, properties.VOCABULARY_DIRNAME)
    for name, source in vocabulary_files(graph.uri).items():
        with open(os.path.join(vocabularies, name), "rb") as shipped, open(source, "rb") as original:
            assert shipped.read() == original.read(), name


def test_lineage_of_the_push_includes_the_transform(taxi_run: TaxiRun) -> None:
    chain = {entry["role"]: entry for entry in lineage.pushed_chain(taxi_run.store)["chain"]}
    graph = chain["transform graph"]
    assert graph["artifact"]["id"] == taxi_run.output("Transform", "transform_graph").id
    assert graph["producer"]["component_id"] == "Transform"
