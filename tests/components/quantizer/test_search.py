"""The accuracy-aware search (components/quantizer/search.py) through the Quantizer's executor, on a real diabetes
regressor (raw features, trained here in seconds) and real conversions; its config checks as pure functions."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.datasets import load_diabetes
from tfx.types import standard_artifacts

from components.quantizer import executor
from components.quantizer.options import resolve_options
from components.quantizer.search import SearchConfig, SearchFailed, check_search_request, parse_search_config
from components.representative_dataset.storage import write_representative_dataset
from components.shared import properties
from components.types import RepresentativeDataset
from pipelines.models.diabetes import diabetes_trainer

LABEL = diabetes_trainer.LABEL_KEY


def _examples(frame, rows: np.ndarray) -> list[bytes]:
    records = []
    for i in rows:
        feature = {k: tf.train.Feature(float_list=tf.train.FloatList(value=[float(frame[k].iloc[i])]))
                   for k in (*diabetes_trainer.FEATURE_KEYS, "target")}
        feature[LABEL] = feature.pop("target")
        records.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return records


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory) -> dict:
    """The diabetes regressor as a Model artifact, a calibration sample and a disjoint search sample."""
    root = tmp_path_factory.mktemp("diabetes")
    frame = load_diabetes(scaled=False, as_frame=True).frame
    order = np.random.default_rng(0).permutation(len(frame))
    train, calibration, search = order[:300], order[:200], order[300:]
    x = {k: frame[k].to_numpy(np.float32)[train, None] for k in diabetes_trainer.FEATURE_KEYS}
    y = frame["target"].to_numpy(np.float32)[train]
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    keras.utils.set_random_seed(0)
    model = diabetes_trainer.build_model(dataset, 32, 1e-2, float(y.mean()))
    model.fit(dataset.repeat(), steps_per_epoch=300, epochs=1, verbose=0)
    artifact = standard_artifacts.Model()
    artifact.uri, artifact.id = str(root / "model"), 7
    model.save(os.path.join(artifact.uri, "Format-Serving"), save_format="tf",
               signatures=diabetes_trainer.serving_signatures(model))
    datasets = {}
    for name, rows, artifact_id in (("representative", calibration, 8), ("search", search, 9)):
        ds = RepresentativeDataset()
        ds.uri, ds.id = str(root / name), artifact_id
        write_representative_dataset(ds.uri, _examples(frame, rows), {"num_examples": len(rows)})
        datasets[name] = ds
    return {"model": artifact, **datasets}


def _do(diabetes: dict, output_uri: str, search: dict | None, with_search_dataset: bool = True):
    output = standard_artifacts.Model()
    output.uri = output_uri
    exec_properties = {executor.MODE_KEY: "int8", executor.ENGINE_KEY: "tflite_converter",
                       executor.SIGNATURE_NAME_KEY: diabetes_trainer.DENSE_SIGNATURE,
                       executor.DENYLISTED_OPS_KEY: "[]", executor.ALLOW_FLOAT_FALLBACK_KEY: 0,
                       executor.ACCURACY_SEARCH_KEY: SearchConfig.from_mapping(search).to_json() if search else None}
    inputs = {executor.MODEL_KEY: [diabetes["model"]],
              executor.REPRESENTATIVE_DATASET_KEY: [diabetes["representative"]]}
    if with_search_dataset:
        inputs[executor.SEARCH_DATASET_KEY] = [diabetes["search"]]
    executor.Executor().Do(inputs, {executor.QUANTIZED_MODEL_KEY: [output]}, exec_properties)
    return output


def test_no_candidate_within_the_budget_publishes_nothing_and_lists_what_was_tried(diabetes, tmp_path) -> None:
    # An impossible budget: the quantized model must be 100 % better than the float one, in two conversions.
    search = {"label_key": LABEL, "metric": "mae", "delta_type": "relative", "max_delta": -1.0, "max_trials": 2}
    with pytest.raises(SearchFailed) as failure:
        _do(diabetes, str(tmp_path / "out"), search)
    message = str(failure.value)
    assert "in 2 of max_trials 2 conversions" in message
    assert "#1 requested int8 io=int8: delta +" in message and "#2 io_float32 int8 io=float32: delta +" in message
    assert "Best delta +" in message and "Nothing was published" in message
    assert not (tmp_path / "out").exists()


def test_the_search_finds_a_model_within_the_delta_and_records_every_candidate(diabetes, tmp_path) -> None:
    search = {"label_key": LABEL, "metric": "mae", "delta_type": "relative", "max_delta": 0.02, "max_trials": 6}
    output = _do(diabetes, str(tmp_path / "out"), search)
    with open(tmp_path / "out" / properties.QUANTIZATION_REPORT_FILENAME) as f:
        report = json.load(f)
    section = report["search"]
    candidates = section["candidates"]
    assert candidates[0]["step"] == "requested" and not candidates[0]["passed"]  # int8 over raw inputs misses
    chosen = next(c for c in candidates if c["trial"] == section["chosen_trial"])
    assert chosen["passed"] and chosen["delta"] <= 0.02 and "cheapest remedy" in section["why"]
    assert all(c["passed"] is False for c in candidates if c["trial"] < chosen["trial"])
    assert report["mode"] == chosen["config"]["mode"] and report["io_dtype"] == chosen["config"]["io_dtype"]
    assert output.get_int_custom_property(properties.CANDIDATES_TRIED) == len(candidates)
    assert json.loads(output.get_string_custom_property(properties.CHOSEN_CONFIG)) == chosen["config"]
    assert output.get_float_custom_property(properties.SEARCH_DELTA) == pytest.approx(chosen["delta"])
    for c in candidates:
        assert c["size_bytes"] > 0 and c["conversion_seconds"] > 0 and c["metric_value"] > 0


def test_search_without_its_dataset_and_the_dataset_without_the_search_are_refused(diabetes, tmp_path) -> None:
    with pytest.raises(ValueError, match="accuracy_search needs the search_dataset input"):
        _do(diabetes, str(tmp_path / "a"), {"label_key": LABEL}, with_search_dataset=False)
    with pytest.raises(ValueError, match="search_dataset is wired but accuracy_search is not set"):
        _do(diabetes, str(tmp_path / "b"), None)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("search, message", [
    ({"metric": "mae"}, "needs label_key"),
    ({"label_key": LABEL, "metrc": "mae"}, r"unknown key\(s\) \['metrc'\]"),
    ({"label_key": LABEL, "metric": "rmse"}, "metric 'rmse' is unknown"),
    ({"label_key": LABEL, "delta_type": "ratio"}, "delta_type must be one of"),
    ({"label_key": LABEL, "max_delta": float("nan")}, "max_delta must be a finite number"),
    ({"label_key": LABEL, "max_trials": 0}, "max_trials"),
    ({"label_key": LABEL, "max_float_op_fraction": 1.5}, r"max_float_op_fraction is a share .* \[0, 1\]"),
])
def test_bad_search_configs_name_the_key(search: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchConfig.from_mapping(search)


def test_the_config_round_trips_and_off_means_none() -> None:
    config = SearchConfig.from_mapping({"label_key": LABEL, "metric": "mae", "max_delta": 0.02})
    assert parse_search_config(config.to_json()) == config
    assert parse_search_config(None) is None and parse_search_config("") is None
    with pytest.raises(ValueError, match="calibrated mode"):
        check_search_request(config, True, resolve_options("float16"))
