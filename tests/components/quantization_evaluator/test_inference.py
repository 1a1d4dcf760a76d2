"""Decoding labels and slices from tf.Examples, and the batched prediction DoFns on the demo run's real models."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tfx_bsl.coders import example_coder

from components.quantization_evaluator.inference import (
    ParseExamplesDoFn,
    PredictDoFn,
    decode_labels,
    decode_slice_values,
    measure_latency,
    parse_examples,
)
from components.quantizer import tflite_engine
from components.quantizer.options import resolve_options
from components.shared.model_runners import TFLiteRunner, quantize_array
from components.shared.signature_inputs import InputSpec, examples_to_inputs


def _example(**features: list) -> bytes:
    feature = {}
    for name, values in features.items():
        if values and isinstance(values[0], str):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
        elif values and isinstance(values[0], float):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


EXAMPLES = [
    _example(x=[1.0], species=[2], island=["Biscoe"], year=[2007]),
    _example(x=[2.0], island=["Dream"]),                     # no label
    _example(x=[3.0], species=[], year=[2008]),   # empty label, no island
    _example(x=[4.0], species=[0, 1], island=["Dream", "x"]),  # two labels: missing; a slice takes the first
]
SPECS = [InputSpec("x", np.dtype(np.float32), (None, 1))]


def _decoded() -> object:
    return example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(EXAMPLES)


def test_labels_are_float_with_nan_where_absent() -> None:
    np.testing.assert_array_equal(decode_labels(_decoded(), "species", "test"), [2.0, np.nan, np.nan, np.nan])
    assert np.isnan(decode_labels(_decoded(), "no_such_feature", "test")).all()


def test_slice_values_are_strings_or_none() -> None:
    assert list(decode_slice_values(_decoded(), "island", "test")) == ["Biscoe", "Dream", None, "Dream"]
    assert list(decode_slice_values(_decoded(), "year", "test")) == ["2007", None, "2008", None]


def test_slice_values_that_are_not_utf8_are_backslash_escaped() -> None:
    records = [tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0])),
        "island": tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))})).SerializeToString()
        for value in (b"Biscoe", b"Dr\xffeam", "Torgersen \u00e9".encode())]
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)
    assert list(decode_slice_values(batch, "island", "test")) == ["Biscoe", "Dr\\xffeam", "Torgersen \u00e9"]
    parsed = parse_examples(records, SPECS, "species", ["island"], "test")
    assert parsed.slice_values["island"][1] == "Dr\\xffeam"


def test_nonfinite_inputs_are_masked_per_feature() -> None:
    records = EXAMPLES + [_example(x=[float("nan")], species=[1]), _example(x=[float("-inf")], species=[0])]
    parsed = parse_examples(records, SPECS, "species", [], "test")
    assert list(parsed.nonfinite_inputs) == ["x"]
    np.testing.assert_array_equal(parsed.nonfinite_inputs["x"], [False] * 4 + [True, True])
    assert parse_examples(EXAMPLES, SPECS, "species", [], "test").nonfinite_inputs == {}


def test_string_labels_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"label 'island' holds .* values; the evaluator needs numeric labels"):
        decode_labels(_decoded(), "island", "Examples artifact 'x' split 'eval'")


def test_parse_dofn_decodes_inputs_labels_and_slices_in_one_batch() -> None:
    dofn = ParseExamplesDoFn(SPECS, "species", ["island"], "test")
    dofn.setup()  # as Beam does: it loads the transform graph when there is one
    (parsed,) = dofn.process(EXAMPLES)
    np.testing.assert_array_equal(parsed.inputs["x"], [[1.0], [2.0], [3.0], [4.0]])
    assert parsed.inputs["x"].dtype == np.float32
    assert list(parsed.slice_values) == ["island"] and len(parsed.labels) == 4


def test_predict_dofn_round_and_clip_matches_the_tflite_model_fed_float_inputs(demo_quantized, tmp_path) -> None:
    """The DoFn quantizes the int8 model's inputs with round and clip; the same model converted with float32 I/O
    quantizes them inside TFLite. Same calibration data, so same scales: the predictions must agree."""
    parsed = parse_examples(demo_quantized.eval_records, demo_quantized.specs, "species", ["island"], "demo eval")
    dofn = PredictDoFn(demo_quantized.saved_model_dir, demo_quantized.signature_name, [demo_quantized.tflite_path],
                       "probabilities", [demo_quantized.quant_output])
    dofn.setup()
    ((candidate, batch),) = dofn.process(parsed)
    assert candidate == 0
    dofn.teardown()
    n = len(demo_quantized.eval_records)
    assert batch.float_predictions.shape == batch.quant_predictions.shape == (n, 3)
    np.testing.assert_allclose(batch.float_predictions.sum(axis=1), 1.0, rtol=1e-5)

    int8_io = TFLiteRunner(demo_quantized.tflite_path)
    assert {d["dtype"] for d in int8_io.input_details.values()} == {np.int8}  # the demo quantizes the inputs
    calibration = examples_to_inputs(demo_quantized.calibration_records, demo_quantized.specs, source="calibration")
    float_io_model = tflite_engine.convert(demo_quantized.saved_model_dir, demo_quantized.signature_name,
                                           resolve_options("int8", "float32"), calibration)
    path = str(tmp_path / "float_io.tflite")
    with open(path, "wb") as f:
        f.write(float_io_model)
    float_io = TFLiteRunner(path)
    assert {d["dtype"] for d in float_io.input_details.values()} == {np.float32}
    (out,) = float_io.predict(parsed.inputs).values()
    (out_details,) = int8_io.output_details.values()
    step = out_details["quantization"][0]
    np.testing.assert_allclose(batch.quant_predictions, out, atol=step * 1.01)
    np.testing.assert_array_equal(batch.quant_predictions.argmax(1), out.argmax(1))
    # TFMA truncates instead: on real data that feeds other int8 values than TFLite's own quantization.
    truncated = {name: np.clip(np.trunc(parsed.inputs[name] / d["quantization"][0]) + d["quantization"][1],
                               -128, 127).astype(np.int8) for name, d in int8_io.input_details.items()}
    rounded = {name: quantize_array(parsed.inputs[name], *d["quantization"], np.int8)
               for name, d in int8_io.input_details.items()}
    assert any((truncated[k] != rounded[k]).any() for k in rounded)


def test_latency_is_measured_after_warmup(demo_quantized) -> None:
    runner = TFLiteRunner(demo_quantized.tflite_path)
    inputs = parse_examples(demo_quantized.eval_records[:4], demo_quantized.specs, "species", [], "demo").inputs
    latency = measure_latency(runner, inputs, warmup=5, calls=50)
    assert latency.calls == 50 and 0 < latency.p50_ms <= latency.p95_ms < 1000
