"""Quantizer component: parameters checked when the pipeline is built, wiring in the demo pipeline."""

from __future__ import annotations

import json

import pytest
from tfx.types import channel_utils, standard_artifacts

from quantgate.components import Quantizer, RepresentativeDataset
from quantgate.pipelines.diabetes import create_diabetes_pipeline
from quantgate.pipelines.digits_qat import create_digits_qat_pipeline
from quantgate.pipelines.kinds import PIPELINES
from quantgate.pipelines.pipeline import PENGUIN_QUANTIZE, create_pipeline
from quantgate.pipelines.taxi import create_taxi_pipeline


def _model() -> object:
    return channel_utils.as_channel([standard_artifacts.Model()])


def _representative() -> object:
    return channel_utils.as_channel([RepresentativeDataset()])


def test_parameters_become_execution_properties() -> None:
    quantizer = Quantizer(model=_model(), representative_dataset=_representative(), signature_name="serving_features",
                          io_dtype="uint8", denylisted_ops=["softmax"], allow_float_fallback=True,
                          denylisted_nodes=["model/dense/MatMul"])
    assert quantizer.exec_properties == {
        "mode": "int8", "engine": "tflite_converter", "signature_name": "serving_features", "io_dtype": "uint8",
        "denylisted_ops": json.dumps(["softmax"]), "allow_float_fallback": 1, "allow_select_ops": 0,
        "denylisted_nodes": json.dumps(["model/dense/MatMul"]), "int16_nodes": "[]", "int4_weight_nodes": "[]",
        "int4_block_size": 32, "accuracy_search": None}
    assert quantizer.outputs["quantized_model"].type == standard_artifacts.Model


def test_int4_weight_nodes_become_execution_properties() -> None:
    quantizer = Quantizer(model=_model(), mode="dynamic_range", engine="litert_quantizer",
                          int4_weight_nodes=["model/dense/MatMul;model/dense/BiasAdd"], int4_block_size=64)
    assert quantizer.exec_properties["int4_weight_nodes"] == json.dumps(["model/dense/MatMul;model/dense/BiasAdd"])
    assert quantizer.exec_properties["int4_block_size"] == 64


def test_modes_without_calibration_need_no_representative_dataset() -> None:
    assert Quantizer(model=_model(), mode="float16").exec_properties["mode"] == "float16"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "int8"}, r"mode 'int8' quantizes activations and needs representative_dataset"),
    ({"mode": "int16x8"}, r"mode 'int16x8' quantizes activations and needs representative_dataset"),
    ({"mode": "int4", "representative_dataset": True}, r"unknown mode 'int4'"),
    ({"mode": "int8", "io_dtype": "int32", "representative_dataset": True}, r"io_dtype 'int32' is not available"),
    ({"mode": "int8", "int16_nodes": ["x"], "representative_dataset": True}, r"int16_nodes .*needs engine 'litert_quantizer'"),
    ({"mode": "dynamic_range", "int4_weight_nodes": ["x"]}, r"int4_weight_nodes .*needs engine 'litert_quantizer'"),
    ({"mode": "dynamic_range", "engine": "litert_quantizer", "int4_weight_nodes": ["x"], "int4_block_size": 48},
     r"int4_block_size 48 is not one of"),
])
def test_bad_parameters_fail_when_the_component_is_built(kwargs: dict, message: str) -> None:
    if kwargs.pop("representative_dataset", False):
        kwargs["representative_dataset"] = _representative()
    with pytest.raises(ValueError, match=message):
        Quantizer(model=_model(), **kwargs)


def test_the_demo_pipeline_quantizes_after_the_representative_dataset(tmp_path) -> None:
    pipeline = create_pipeline("p", str(tmp_path / "root"), str(tmp_path / "data"),
                               quantize=PENGUIN_QUANTIZE.with_overrides({"io_dtype": "float32"}))
    (quantizer,) = [c for c in pipeline.components if c.id == "Quantizer"]
    assert quantizer.exec_properties["mode"] == "int8"
    assert quantizer.exec_properties["signature_name"] == "serving_features"
    assert quantizer.exec_properties["io_dtype"] == "float32"
    producers = {name: channel.producer_component_id for name, channel in quantizer.inputs.items()}
    assert producers == {"model": "Trainer", "representative_dataset": "RepresentativeDatasetGen"}


@pytest.mark.parametrize("factory, kind", [(create_pipeline, "penguin"), (create_taxi_pipeline, "taxi"),
                                           (create_diabetes_pipeline, "diabetes"),
                                           (create_digits_qat_pipeline, "digits-qat")])
def test_every_factory_passes_the_int4_knobs_to_its_quantizers(factory, kind, tmp_path) -> None:
    quantize = PIPELINES[kind].default_configs()[0].with_overrides(
        {"engine": "litert_quantizer", "int4_weight_nodes": ["dense/MatMul"], "int4_block_size": 64})
    pipeline = factory("p", str(tmp_path / "root"), str(tmp_path / "data"), quantize=quantize)
    # The per-node knobs are the main Quantizers'; the extra candidates (Quantizer_<mode>) take the mode alone.
    quantizers = [c for c in pipeline.components if isinstance(c, Quantizer) and not c.id.startswith("Quantizer_")]
    extras = {c.id: c.exec_properties["engine"] for c in pipeline.components if c.id.startswith("Quantizer_")}
    assert extras == ({"Quantizer_float16": "tflite_converter", "Quantizer_dynamic_range": "litert_quantizer"}
                      if factory is create_pipeline else {})
    assert quantizers and all(q.exec_properties["int4_weight_nodes"] == '["dense/MatMul"]'
                              and q.exec_properties["int4_block_size"] == 64 for q in quantizers)
