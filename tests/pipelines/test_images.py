"""The image pipeline, one real local run (session-scoped): PNG bytes in tf.Examples, decoded by Transform, a
MobileNet-class CNN exported as TFX exports it (``serving_default`` over tf.Examples only); quantgate derives the
function to convert, calibrates and scores through the transform graph, converts all-int8, gates on the eval split
and pushes ``model.tflite`` with ``labels.txt``. Many facts checked against the one run.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl

from quantgate.components.representative_dataset_gen.storage import read_examples
from quantgate.components.shared import properties
from quantgate.components.shared.model_runners import TFLiteRunner
from quantgate.components.shared.signature_inputs import InputSpec
from quantgate.components.shared.transform_inputs import TransformedInputs
from quantgate.pipelines.images import IMAGES_KIND, LABEL_KEY, create_image_pipeline
from quantgate.pipelines.images_data import TFRECORD_NAME, render_image_records, write_image_examples

from .conftest import local_run

# Small: the ~20k-parameter separable CNN, 150 steps of 32 (~4 epochs of the ~1,200 train digits; it reaches
# ~0.9 accuracy), 100 calibration images.
IMAGES_KWARGS = {"architecture": "separable", "train_steps": 150, "eval_steps": 5, "calibration_num_examples": 100}
MAX_DELTA = 0.02  # IMAGE_GATE.max_delta
IMAGE_INPUT = "image_xf"


@pytest.fixture(scope="session")
def images_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    run = local_run(tmp_path_factory, IMAGES_KIND.name, **IMAGES_KWARGS)
    paths, output = run.paths, run.output

    quantized = output("Quantizer", "quantized_model")
    with open(os.path.join(quantized.uri, properties.QUANTIZATION_REPORT_FILENAME)) as f:
        report = json.load(f)
    evaluation = output("QuantizationEvaluator", "evaluation")
    with open(os.path.join(evaluation.uri, properties.METRICS_FILENAME)) as f:
        metrics = json.load(f)
    return {"paths": paths, "output": output, "quantized": quantized, "report": report, "metrics": metrics}


def _eval_records(images_run: dict) -> list[bytes]:
    examples = images_run["output"]("ImportExampleGen", "examples")
    files = tf.io.gfile.glob(os.path.join(examples.uri, "Split-eval", "*"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_the_trainer_exports_only_the_stock_serving_signature(images_run) -> None:
    model = images_run["output"]("Trainer", "model")
    saved_model = loader_impl.parse_saved_model(os.path.join(model.uri, "Format-Serving"))
    # __saved_model_init_op is in the map too: TF2 keeps the initializer (the TFT layer's tables) there
    signatures = {k: v for k, v in saved_model.meta_graphs[0].signature_def.items() if not k.startswith("__")}
    assert list(signatures) == ["serving_default"]
    signature = signatures["serving_default"]
    assert [(i.dtype, name) for name, i in signature.inputs.items()] == [(tf.string.as_datatype_enum, "examples")]


def test_the_function_converted_is_derived_from_the_keras_call_over_the_decoded_image(images_run) -> None:
    report, quantized = images_run["report"], images_run["quantized"]
    assert report["signature_source"] == "derived" and report["signature_name"] == "__call__"
    assert quantized.custom_properties[properties.SIGNATURE_SOURCE].string_value == "derived"
    (name,) = report["inputs"]
    image = report["inputs"][name]
    assert IMAGE_INPUT in name and image["dtype"] == "int8" and image["shape"][1:] == [32, 32, 3]
    # [0, 1] pixels: 256 levels over the calibrated range, a step far below one grey level in 8 bits (1/255)
    assert 0 < image["scale"] <= 1.01 / 255


def test_calibration_went_through_the_transform_graph(images_run) -> None:
    report, output = images_run["report"], images_run["output"]
    transform_graph = output("Transform", "transform_graph")
    assert report["transform_graph"] == {"uri": transform_graph.uri, "id": transform_graph.id}
    assert images_run["quantized"].custom_properties[properties.TRANSFORM_GRAPH_URI].string_value == transform_graph.uri
    sample = output("RepresentativeDatasetGen", "representative_dataset")
    assert report["representative_dataset"] == {"uri": sample.uri, "num_examples": 100}
    records = read_examples(sample.uri)
    assert len(records) == 100
    labels = [tf.train.Example.FromString(r).features.feature[LABEL_KEY].int64_list.value[0] for r in records]
    assert sorted(set(labels)) == list(range(10))  # stratified by digit
    # The sample holds the raw PNGs: the Quantizer decoded them itself, through the transform graph.
    png = tf.train.Example.FromString(records[0]).features.feature["image"].bytes_list.value[0]
    assert png.startswith(b"\x89PNG")


def test_the_quantized_model_is_all_int8(images_run) -> None:
    report = images_run["report"]
    ops = report["ops"]
    assert ops["float_op_count"] == 0, ops["float_ops"]
    assert "int8" in ops["by_dtype"] and set(ops["by_dtype"]) <= {"int8", "int32"}  # int32: bias, shape arithmetic
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= set(ops["ops"])
    (output,) = report["outputs"].values()
    assert output["dtype"] == "int8" and output["shape"][-1] == 10
    sizes = report["sizes"]
    # Weights in 8 bits: about 4x smaller than the same function in float32 TFLite (less on a model this small,
    # where the graph's structure is a fair share of the bytes).
    assert sizes["tflite_bytes"] < 0.5 * sizes["float_tflite_bytes"], sizes


def test_the_evaluator_scores_float_and_int8_accuracy_on_the_eval_split(images_run) -> None:
    metrics, output = images_run["metrics"], images_run["output"]
    assert (metrics["metric"], metrics["split"], metrics["label_key"]) == ("accuracy", "eval", LABEL_KEY)
    overall = metrics["overall"]
    assert overall["num_examples"] == len(_eval_records(images_run))
    float_accuracy, int8_accuracy = overall["float"]["accuracy"], overall["quantized"]["accuracy"]
    assert float_accuracy >= 0.8, float_accuracy
    assert overall["delta"] == pytest.approx(float_accuracy - int8_accuracy)
    assert metrics["transform_graph"]["uri"] == output("Transform", "transform_graph").uri
    # The derived function on decoded images answers as the stock serving_default does on the PNG examples.
    agreement = metrics["serving_signature_agreement"]
    assert agreement["signature"] == "serving_default" and agreement["num_examples"] > 0, agreement
    assert agreement["agreement"] == 1.0, agreement
    print(f"images: float accuracy {float_accuracy:.4f}, int8 {int8_accuracy:.4f}, delta {overall['delta']:+.4f} on "
          f"{overall['num_examples']} eval images; int8 {images_run['report']['sizes']['tflite_bytes']} bytes vs "
          f"float {images_run['report']['sizes']['float_tflite_bytes']}")


def test_the_gate_decides_and_the_push_follows(images_run) -> None:
    metrics, output = images_run["metrics"], images_run["output"]
    blessing = output("QuantizationEvaluator", "blessing")
    blessed = blessing.custom_properties[properties.BLESSED].int_value
    assert blessed == int(metrics["verdict"]["blessed"])
    assert blessed == int(metrics["overall"]["delta"] <= MAX_DELTA)
    assert blessing.custom_properties[properties.EVALUATED_SHA256].string_value == images_run["report"]["sha256"]
    pushed = output("QuantizedModelPusher", "pushed_model")
    if not blessed:  # an honest refusal, said in both artifacts, nothing pushed
        assert "accuracy" in blessing.custom_properties[properties.REASON].string_value
        assert pushed.custom_properties[properties.PUSHED].int_value == 0
        pytest.fail(f"the int8 image model was not blessed: {metrics['verdict']['reason']}")
    assert pushed.custom_properties[properties.PUSHED].int_value == 1
    destination = pushed.custom_properties[properties.PUSHED_DESTINATION].string_value
    with open(os.path.join(destination, properties.TFLITE_FILENAME), "rb") as f:
        pushed_bytes = f.read()
    with open(os.path.join(images_run["quantized"].uri, properties.SERVING_DIR, properties.TFLITE_FILENAME), "rb") as f:
        assert f.read() == pushed_bytes
    with open(os.path.join(destination, properties.LABELS_FILENAME)) as f:
        assert f.read().splitlines() == [str(i) for i in range(10)]
    with open(os.path.join(destination, properties.PUSH_MANIFEST_FILENAME)) as f:
        manifest = json.load(f)
    (image,) = manifest["io"]["inputs"]
    assert image["feature"].startswith(IMAGE_INPUT) and "transform graph" in image["feature_source"]


def test_the_pushed_model_classifies_raw_png_examples_through_the_transform(images_run) -> None:
    """What an app does with the push: decode the PNG as Transform does, quantize, invoke, read labels.txt."""
    pushed = images_run["output"]("QuantizedModelPusher", "pushed_model")
    if not pushed.custom_properties[properties.PUSHED].int_value:
        pytest.skip("nothing pushed (see test_the_gate_decides_and_the_push_follows)")
    destination = pushed.custom_properties[properties.PUSHED_DESTINATION].string_value
    runner = TFLiteRunner(os.path.join(destination, properties.TFLITE_FILENAME))
    (spec,) = runner.input_specs
    transform = TransformedInputs(images_run["output"]("Transform", "transform_graph").uri,
                                  [InputSpec(name=spec.name, dtype=np.dtype(np.float32), shape=spec.shape)],
                                  source="the eval split")
    records = _eval_records(images_run)[:200]
    (scores,) = runner.predict(transform(records)).values()
    labels = np.array([tf.train.Example.FromString(r).features.feature[LABEL_KEY].int64_list.value[0]
                       for r in records])
    assert np.mean(scores.argmax(axis=1) == labels) >= 0.75


def test_the_png_examples_are_written_only_when_changed(tmp_path) -> None:
    path = write_image_examples(str(tmp_path))
    assert os.path.basename(path) == TFRECORD_NAME
    mtime = os.stat(path).st_mtime_ns
    records = [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]
    assert len(records) == 1797
    first = tf.train.Example.FromString(records[0]).features.feature
    assert tf.io.decode_png(first["image"].bytes_list.value[0]).shape == (32, 32, 3)
    write_image_examples(str(tmp_path))
    assert os.stat(path).st_mtime_ns == mtime


def test_more_records_are_shifted_copies_not_repeats() -> None:
    records = render_image_records(4000)
    assert len(set(records)) == 4000
    assert records[:10] == render_image_records(10)


def test_the_factory_wires_the_transform_graph_everywhere_and_no_dense_signature(tmp_path) -> None:
    pipeline = create_image_pipeline("p", str(tmp_path / "root"), str(tmp_path / "data"), float_evaluator=False)
    by_id = {c.id: c for c in pipeline.components}
    assert "Evaluator" not in by_id and "QuantizedModelPusher" in by_id
    for component_id in ("Quantizer", "QuantizationEvaluator", "QuantizedModelPusher"):
        assert "transform_graph" in by_id[component_id].inputs, component_id
    assert by_id["Quantizer"].exec_properties["signature_name"] is None
