"""diagnostics + html_report: layer-wise errors of real conversions (in-process here; the executor runs them in the
conversion child), their place in the report and the HTML page."""

from __future__ import annotations

import base64
import math
import re

import pytest

from quantgate.components.quantizer import diagnostics, float_reference, html_report, tflite_engine
from quantgate.components.quantizer.options import resolve_options
from quantgate.components.quantizer.report import op_output_names

SIGNATURE = "serving_features"


@pytest.fixture(scope="module")
def tflite_errors(bad_layer_model) -> list[dict]:
    return diagnostics.layer_errors(bad_layer_model.path, SIGNATURE, resolve_options("int8"), bad_layer_model.inputs)


def _assert_finite_records(records: list[dict]) -> None:
    assert records
    for r in records:
        assert isinstance(r["tensor"], str) and r["op"]
        for key in ("rmse_over_scale", "mean_error", "max_abs_error", "rmse", "scale"):
            assert math.isfinite(r[key]), (key, r)
    values = [r["rmse_over_scale"] for r in records]
    assert values == sorted(values, reverse=True)


def test_tflite_layer_errors_cover_the_ops_and_rank_the_bad_layer_first(tflite_errors, bad_layer_model) -> None:
    _assert_finite_records(tflite_errors)
    ops = [r["op"] for r in tflite_errors]
    assert ops.count("FULLY_CONNECTED") == 3 and "SOFTMAX" in ops
    worst, runner_up = tflite_errors[0], tflite_errors[1]
    assert "bad" in worst["tensor"] and worst["op"] == "FULLY_CONNECTED"
    assert worst["rmse_over_scale"] > 5 * runner_up["rmse_over_scale"]
    assert worst["dtype"] == "int8"
    # The names are the ones denylisted_nodes takes: converting with the worst one denylisted leaves it float.
    options = resolve_options("int8", denylisted_nodes=[worst["tensor"]])
    again = diagnostics.layer_errors(bad_layer_model.path, SIGNATURE, options, bad_layer_model.inputs)
    assert worst["tensor"] not in {r["tensor"] for r in again}
    assert len(again) == len(tflite_errors) - 1


def test_litert_layer_errors_name_the_float_models_tensors(bad_layer_model) -> None:
    options = resolve_options("int8", engine="litert_quantizer")
    records = diagnostics.layer_errors(bad_layer_model.path, SIGNATURE, options, bad_layer_model.inputs)
    _assert_finite_records(records)
    float_names = set(op_output_names(float_reference.float_tflite(bad_layer_model.path, SIGNATURE)))
    assert {r["tensor"] for r in records} <= float_names
    bad = next(r for r in records if "bad" in r["tensor"])
    assert bad["rmse_over_scale"] > 5 * min(r["rmse_over_scale"] for r in records)


def test_int16x8_compares_the_converted_model_side_by_side(tiny_models, tiny_inputs) -> None:
    records = diagnostics.layer_errors(tiny_models["one_dense"], "dense", resolve_options("int16x8"), tiny_inputs)
    _assert_finite_records(records)
    assert {r["dtype"] for r in records} == {"int16"}
    assert diagnostics.method("tflite_converter", "int16x8") == diagnostics.WHOLE_MODEL


def test_modes_without_calibration_have_no_layer_errors(tiny_models, tiny_inputs) -> None:
    with pytest.raises(ValueError, match="calibrated mode"):
        diagnostics.layer_errors(tiny_models["one_dense"], "dense", resolve_options("float16"), tiny_inputs)
    report = {"engine": "tflite_converter", "mode": "float16", "warnings": []}
    diagnostics.add_to_report(report, None)
    assert report["layer_errors"] is None


def _report(records: list[dict]) -> dict:
    report = {"engine": "tflite_converter", "mode": "int8", "signature_name": SIGNATURE, "io_dtype": "int8",
              "warnings": ["input 'x': a warning <with markup>"], "representative_dataset": {"num_examples": 64},
              "sizes": {"tflite_bytes": 1234, "float_variables_bytes": 4321}, "ops": {"by_dtype": {"int8": 5}},
              "input_steps": {"x": {"step": 0.02, "std": 1.0, "step_over_std": 0.02, "distinct_levels": 90,
                                    "coarse": False}}}
    diagnostics.add_to_report(report, records)
    return report


def test_the_report_keeps_the_worst_records_and_the_count(tflite_errors) -> None:
    many = tflite_errors * 60
    report = _report(many)
    entry = report["layer_errors"]
    assert entry["num_tensors"] == len(many) and len(entry["tensors"]) == diagnostics.MAX_REPORTED
    assert entry["tensors"][0] == tflite_errors[0]
    assert entry["method"] == diagnostics.PER_LAYER and entry["num_examples"] == 64 and entry["error"] is None
    assert diagnostics.worst_summary(many, 1) == (f"{tflite_errors[0]['tensor']} (FULLY_CONNECTED) "
                                                  f"{tflite_errors[0]['rmse_over_scale']:.3g}")


def test_a_diagnostics_failure_is_recorded_and_warned() -> None:
    report = _report([])
    diagnostics.add_to_report(report, None, "RuntimeError: boom")
    assert report["layer_errors"]["error"] == "RuntimeError: boom"
    assert report["warnings"][-1] == "layer-wise diagnostics failed, the model converted: RuntimeError: boom"
    assert "Layer-wise diagnostics failed: RuntimeError: boom" in html_report.render_html(report)


def test_the_html_page_has_the_top_table_and_a_decodable_png(tflite_errors) -> None:
    page = html_report.render_html(_report(tflite_errors))
    (encoded,) = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    png = base64.b64decode(encoded, validate=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert page.index(tflite_errors[0]["tensor"]) < page.index(tflite_errors[-1]["tensor"])
    assert "&lt;with markup&gt;" in page and "<with markup>" not in page
    assert f"{len(tflite_errors)} quantized tensors compared on 64" in page


def test_long_tensor_names_are_shortened_in_the_plot_labels_only() -> None:
    name = "model/" + "very_long_layer_name/" * 5 + "MatMul;model/dense/BiasAdd"
    label = html_report._label(name)
    assert len(label) <= html_report.MAX_LABEL_CHARS and label.startswith("model/") and label.endswith("BiasAdd")


def test_convert_to_file_honours_the_node_lists(bad_layer_model, tmp_path) -> None:
    from quantgate.components.quantizer.engines import convert_to_file
    from quantgate.components.quantizer.report import float_ops_by_output

    names = op_output_names(tflite_engine.calibrated_model(_configured(bad_layer_model)))
    bad = next(n for n in names if "bad" in n)
    path = tmp_path / "model.tflite"
    convert_to_file(bad_layer_model.path, SIGNATURE, resolve_options("int8", denylisted_nodes=[bad]),
                    bad_layer_model.inputs, str(path))
    assert float_ops_by_output(path.read_bytes()) == [("FULLY_CONNECTED", bad)]


def _configured(model) -> object:
    converter = tflite_engine.converter_for(model.path, SIGNATURE)
    tflite_engine.configure(converter, resolve_options("int8"), model.inputs, allow_float=True)
    return converter
