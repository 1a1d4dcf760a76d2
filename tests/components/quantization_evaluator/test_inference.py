"""Decoding labels and slices from tf.Examples, and the batched prediction DoFns on the golden penguin artifacts (the
demo Trainer module's model and the real Quantizer's int8 model of it; no pipeline)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tfx_bsl.coders import example_coder

from quantgate.components.quantization_evaluator.inference import (
    BatchParser,
    ParserSpec,
    ScoreDoFn,
    decode_labels,
    decode_slice_values,
    feature_kinds,
    measure_latency,
    parse_examples,
)
from quantgate.components.quantizer import tflite_engine
from quantgate.components.quantizer.options import resolve_options
from quantgate.components.shared.model_runners import TFLiteRunner, quantize_array
from quantgate.components.shared.signature_inputs import InputSpec, examples_to_inputs


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


def _assert_same(fast, exact) -> None:
    assert fast.inputs.keys() == exact.inputs.keys()
    for name in exact.inputs:
        np.testing.assert_array_equal(fast.inputs[name], exact.inputs[name])
        assert fast.inputs[name].dtype == exact.inputs[name].dtype
    np.testing.assert_array_equal(fast.labels, exact.labels)
    assert {k: list(v) for k, v in fast.slice_values.items()} == {k: list(v) for k, v in exact.slice_values.items()}
    assert fast.nonfinite_inputs.keys() == exact.nonfinite_inputs.keys()


def test_batch_parser_matches_the_tfx_bsl_path() -> None:
    """The one-pass parse_example decoder gives what tfx_bsl gives: absent, empty and repeated labels, int and
    bytes slices, bad UTF-8, NaN inputs."""
    bad_utf8 = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[float("nan")])),
        "species": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
        "year": tf.train.Feature(int64_list=tf.train.Int64List(value=[2009])),
        "island": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Dr\xffeam"]))})).SerializeToString()
    records = EXAMPLES + [bad_utf8]
    kinds = feature_kinds(_decoded())
    parser = BatchParser(SPECS, "species", ["island", "year"], "test", kinds)
    assert parser._feature_spec is not None  # the fast path is the one under test
    fast = parser(records)
    _assert_same(fast, parse_examples(records, SPECS, "species", ["island", "year"], "test"))
    assert list(fast.slice_values["year"]) == ["2007", None, "2008", None, "2009"]


def test_batch_parser_falls_back_to_the_exact_path_and_its_errors() -> None:
    kinds = feature_kinds(_decoded())
    parser = BatchParser(SPECS, "species", ["island"], "test", kinds)
    # The label is a float in this batch, int64 in the first records: parse_example refuses, tfx_bsl decodes it.
    floats = [_example(x=[1.0], species=[1.0], island=["Dream"])]
    np.testing.assert_array_equal(parser(floats).labels, [1.0])
    with pytest.raises(ValueError, match=r"feature 'x' is missing from 1 of a batch of 2 examples"):
        parser([EXAMPLES[0], _example(species=[1])])
    with pytest.raises(ValueError, match=r"feature 'x' must have 1 value\(s\) per example"):
        parser([EXAMPLES[0], _example(x=[1.0, 2.0], species=[1])])


def test_score_dofn_decodes_and_predicts_in_one_step(penguin_quantized) -> None:
    records = penguin_quantized.eval_records
    kinds = feature_kinds(example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records[:8]))
    spec = ParserSpec(tuple(penguin_quantized.specs), "species", ("island",), "demo eval", kinds)
    fast = spec.build()(records)
    _assert_same(fast, parse_examples(records, penguin_quantized.specs, "species", ["island"], "demo eval"))
    dofn = ScoreDoFn(spec, penguin_quantized.saved_model_dir, penguin_quantized.signature_name,
                     [penguin_quantized.tflite_path], "probabilities", [penguin_quantized.quant_output])
    dofn.setup()
    ((_, batch),) = dofn.process(records)
    dofn.teardown()
    np.testing.assert_array_equal(batch.labels, fast.labels)
    assert list(batch.slice_values["island"]) == list(fast.slice_values["island"])
    assert batch.float_predictions.shape == (len(records), 3)


def test_predict_dofn_round_and_clip_matches_the_tflite_model_fed_float_inputs(penguin_quantized, tmp_path) -> None:
    """The DoFn quantizes the int8 model's inputs with round and clip; the same model converted with float32 I/O
    quantizes them inside TFLite. Same calibration data, so same scales: the predictions must agree."""
    parsed = parse_examples(penguin_quantized.eval_records, penguin_quantized.specs, "species", ["island"], "demo eval")
    spec = ParserSpec(tuple(penguin_quantized.specs), "species", ("island",), "demo eval")
    dofn = ScoreDoFn(spec, penguin_quantized.saved_model_dir, penguin_quantized.signature_name,
                     [penguin_quantized.tflite_path], "probabilities", [penguin_quantized.quant_output])
    dofn.setup()
    ((candidate, batch),) = dofn.process(penguin_quantized.eval_records)
    assert candidate == 0
    dofn.teardown()
    n = len(penguin_quantized.eval_records)
    assert batch.float_predictions.shape == batch.quant_predictions.shape == (n, 3)
    np.testing.assert_allclose(batch.float_predictions.sum(axis=1), 1.0, rtol=1e-5)

    int8_io = TFLiteRunner(penguin_quantized.tflite_path)
    assert {d["dtype"] for d in int8_io.input_details.values()} == {np.int8}  # the demo quantizes the inputs
    calibration = examples_to_inputs(penguin_quantized.calibration_records, penguin_quantized.specs, source="calibration")
    float_io_model = tflite_engine.convert(penguin_quantized.saved_model_dir, penguin_quantized.signature_name,
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


def test_latency_is_measured_after_warmup(penguin_quantized) -> None:
    runner = TFLiteRunner(penguin_quantized.tflite_path)
    inputs = parse_examples(penguin_quantized.eval_records[:4], penguin_quantized.specs, "species", [], "demo").inputs
    latency = measure_latency(runner, inputs, warmup=5, calls=50, budget_s=60.0)  # every call, even on a slow host
    assert latency.calls == 50 and 0 < latency.p50_ms <= latency.p95_ms < 1000
    assert 0 < latency.kernel_p50_ms <= latency.kernel_p95_ms
    assert latency.gated_p95_ms("kernel") == latency.kernel_p95_ms and latency.gated_p95_ms("end_to_end") == latency.p95_ms


def test_the_kernel_call_runs_the_model_on_the_inputs_it_was_given(penguin_quantized) -> None:
    """``TFLiteRunner.kernel`` sets the inputs once; invoking it leaves the outputs ``predict`` gives, and
    ``predict`` re-allocates only when the batch size changes (batch 1, 4, 1 give the same rows)."""
    runner = TFLiteRunner(penguin_quantized.tflite_path)
    inputs = parse_examples(penguin_quantized.eval_records[:4], penguin_quantized.specs, "species", [], "demo").inputs
    (name,) = runner.output_names
    four = runner.predict(inputs)[name]
    one = runner.predict({k: v[:1] for k, v in inputs.items()})[name]
    np.testing.assert_array_equal(one, four[:1])
    invoke = runner.kernel({k: v[1:2] for k, v in inputs.items()})
    invoke()
    (index,) = [d["index"] for d in runner.output_details.values()]
    raw = runner._interpreter.get_tensor(index)
    (details,) = runner.output_details.values()
    scale, zero_point = details["quantization"]
    np.testing.assert_allclose((raw.astype(np.float32) - zero_point) * scale, four[1:2], rtol=1e-6)
