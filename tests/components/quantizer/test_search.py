"""The accuracy-aware search (components/quantizer/search.py) through the Quantizer's executor, on a real diabetes
regressor (raw features, trained here in seconds) and real conversions; its config checks as pure functions."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.datasets import load_diabetes, load_digits
from tfx.types import standard_artifacts

from quantgate.components.quantizer import executor
from quantgate.components.quantizer.options import resolve_options
from quantgate.components.quantizer.search import (
    SearchConfig,
    SearchFailed,
    check_search_request,
    parse_search_config,
)
from quantgate.components.representative_dataset_gen.storage import write_representative_dataset
from quantgate.components.shared import properties
from quantgate.components.types import RepresentativeDataset
from quantgate.pipelines.models.diabetes import diabetes_trainer

LABEL = diabetes_trainer.LABEL_KEY


def _datasets(root, records: list[bytes], calibration: np.ndarray, search: np.ndarray) -> dict:
    datasets = {}
    for name, rows, artifact_id in (("representative", calibration, 8), ("search", search, 9)):
        ds = RepresentativeDataset()
        ds.uri, ds.id = str(root / name), artifact_id
        write_representative_dataset(ds.uri, [records[i] for i in rows], {"num_examples": len(rows)})
        datasets[name] = ds
    return datasets


def _model_artifact(root, model: keras.Model, signatures: dict) -> standard_artifacts.Model:
    artifact = standard_artifacts.Model()
    artifact.uri, artifact.id = str(root / "model"), 7
    model.save(os.path.join(artifact.uri, "Format-Serving"), save_format="tf", signatures=signatures)
    return artifact


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
    artifact = _model_artifact(root, model, diabetes_trainer.serving_signatures(model))
    return {"model": artifact, **_datasets(root, _examples(frame, np.arange(len(frame))), calibration, search)}


def _do(artifacts: dict, output_uri: str, search: dict | None, with_search_dataset: bool = True,
        signature: str = diabetes_trainer.DENSE_SIGNATURE, io_dtype: str | None = None):
    output = standard_artifacts.Model()
    output.uri = output_uri
    exec_properties = {executor.MODE_KEY: "int8", executor.ENGINE_KEY: "tflite_converter",
                       executor.SIGNATURE_NAME_KEY: signature, executor.IO_DTYPE_KEY: io_dtype,
                       executor.DENYLISTED_OPS_KEY: "[]", executor.ALLOW_FLOAT_FALLBACK_KEY: 0,
                       executor.ACCURACY_SEARCH_KEY: SearchConfig.from_mapping(search).to_json() if search else None}
    inputs = {executor.MODEL_KEY: [artifacts["model"]],
              executor.REPRESENTATIVE_DATASET_KEY: [artifacts["representative"]]}
    if with_search_dataset:
        inputs[executor.SEARCH_DATASET_KEY] = [artifacts["search"]]
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
    ({"label_key": LABEL, "output_kind": "logit"},
     r"accuracy_search output_kind must be one of \('probabilities', 'logits'\).*got 'logit'"),
    ({"label_key": LABEL, "metric": "mse", "output_kind": "logits"},
     r"output_kind='logits' is for classifiers, but metric='mse' is a regression metric"),
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


# --- a conv model with one deliberately sensitive layer -------------------------------------------------------------
PIXELS = "pixels"
SENSITIVE = "sensitive"


def _digits_model(x: np.ndarray, y: np.ndarray) -> keras.Model:
    """A digits CNN whose Dense layer ``sensitive`` has weights of 500 on inputs that are always 0 (a dead ReLU
    channel): the float model ignores them, but int8 weights scaled to them round every other weight of that layer
    to 0, in int8 and int16x8 alike. Only float for that layer restores it."""
    keras.utils.set_random_seed(0)
    inputs = keras.layers.Input(shape=(8, 8, 1), name=PIXELS)
    h = keras.layers.Rescaling(1 / 16)(inputs)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(h)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    dead = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="with_dead_channel")
    h = keras.layers.Flatten()(dead(h))
    h = keras.layers.Dense(32, activation="relu", name=SENSITIVE)(h)
    h = keras.layers.Dense(32, activation="relu")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=64, epochs=5, verbose=0)
    kernel, bias = dead.get_weights()
    kernel[..., -1], bias[-1] = 0.0, -10.0  # the last channel never fires
    dead.set_weights([kernel, bias])
    layer = model.get_layer(SENSITIVE)
    weights, dense_bias = layer.get_weights()
    weights[15::16] = 500.0  # the flattened positions of the dead channel
    layer.set_weights([weights, dense_bias])
    return model


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("digits")
    data = load_digits()
    x = data.images.astype(np.float32)[..., None]
    order = np.random.default_rng(0).permutation(len(x))
    train, calibration, search = order[:1200], order[:300], order[1200:1500]
    model = _digits_model(x[train], data.target[train])

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name=PIXELS)])
    def serve(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model(pixels, training=False)}

    records = [tf.train.Example(features=tf.train.Features(feature={
        PIXELS: tf.train.Feature(float_list=tf.train.FloatList(value=image.ravel().tolist())),
        "digit": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))})).SerializeToString()
        for image, label in zip(x, data.target, strict=True)]
    artifact = _model_artifact(root, model, {"serving_features": serve.get_concrete_function()})
    return {"model": artifact, **_datasets(root, records, calibration, search)}


def test_the_search_keeps_at_most_a_fifth_of_a_conv_models_ops_in_float(digits, tmp_path) -> None:
    search = {"label_key": "digit", "metric": "accuracy", "max_delta": 0.02, "max_trials": 6,
              "max_float_op_fraction": 0.2}
    output = _do(digits, str(tmp_path / "out"), search, signature="serving_features", io_dtype="float32")
    with open(tmp_path / "out" / properties.QUANTIZATION_REPORT_FILENAME) as f:
        section = json.load(f)["search"]
    candidates = section["candidates"]
    # int8 and int16x8 both lose the sensitive layer; falling back to float is what passes.
    assert [c["step"] for c in candidates[:2]] == ["requested", "int16"]
    assert not any(c["passed"] for c in candidates[:2]) and candidates[0]["delta"] > 0.1
    chosen = next(c for c in candidates if c["trial"] == section["chosen_trial"])
    assert chosen["step"] == "float_fallback" and chosen["delta"] <= 0.02
    assert 0 < chosen["float_op_count"] <= 0.2 * chosen["op_count"]
    assert [op for op, _ in chosen["float_ops"]] == ["FULLY_CONNECTED"]
    assert any(SENSITIVE in node for node in chosen["config"]["denylisted_nodes"])
    assert "FULLY_CONNECTED" in section["integer_only"]
    assert output.get_int_custom_property(properties.FLOAT_OP_COUNT) == chosen["float_op_count"]


def test_the_component_refuses_one_without_the_other_when_built() -> None:
    from tfx import types

    from quantgate.components import Quantizer

    model = types.Channel(type=standard_artifacts.Model)
    representative, search = types.Channel(type=RepresentativeDataset), types.Channel(type=RepresentativeDataset)
    with pytest.raises(ValueError, match="accuracy_search needs the search_dataset input"):
        Quantizer(model=model, representative_dataset=representative, accuracy_search={"label_key": LABEL})
    with pytest.raises(ValueError, match="search_dataset is wired but accuracy_search is not set"):
        Quantizer(model=model, representative_dataset=representative, search_dataset=search)
    with pytest.raises(ValueError, match="unknown key"):
        Quantizer(model=model, representative_dataset=representative, search_dataset=search,
                  accuracy_search={"label_key": LABEL, "max_detla": 0.1})
    built = Quantizer(model=model, representative_dataset=representative, search_dataset=search,
                      accuracy_search={"label_key": LABEL, "metric": "mae"})
    assert SearchConfig.from_mapping(json.loads(built.exec_properties["accuracy_search"])).metric == "mae"
    assert Quantizer(model=model, representative_dataset=representative).exec_properties["accuracy_search"] is None


def test_with_int4_weight_nodes_the_search_tries_no_int16_candidate() -> None:
    from quantgate.components.quantizer.search import Search, Trial, config_of, describe

    first = Trial(1, "requested", resolve_options("int8", engine="litert_quantizer"),
                  layer_errors=[{"tensor": "a"}, {"tensor": "b"}])
    assert [o.int16_nodes for _, o, _ in Search._int16(first.options, first)] == [(), ("a", "b")]
    int4 = resolve_options("int8", engine="litert_quantizer", int4_weight_nodes=["c"])
    assert Search._int16(int4, first) == []  # int16 activations next to int4 weights are refused (options)
    assert config_of(int4)["int4_weight_nodes"] == ["c"] and describe(int4).endswith("int4 weights: 1 node(s)")


# --- a binary classifier exporting a logit --------------------------------------------------------------------------
FEATURES = "features"
LOGIT_WEIGHTS, LOGIT_BIAS = np.array([[1.0], [0.5]], dtype=np.float32), np.float32(-0.3)


@pytest.fixture(scope="module")
def binary_logits(tmp_path_factory) -> dict:
    """One Dense layer with set weights and no activation (a logit, as a model trained ``from_logits=True``
    exports): no training. Two thirds of the logits are negative and a good share lies in (0, 0.5], where a raw
    output thresholded at 0.5 says class 0 and its sigmoid says class 1."""
    root = tmp_path_factory.mktemp("binary_logits")
    rng = np.random.default_rng(0)
    x = np.stack([rng.uniform(-1.2, 1.0, 500), rng.uniform(-0.5, 0.5, 500)], axis=1).astype(np.float32)
    logits = (x @ LOGIT_WEIGHTS)[:, 0] + LOGIT_BIAS
    labels = (logits + rng.normal(0.0, 0.3, len(x)) > 0).astype(np.int64)  # noisy: float accuracy below 1
    inputs = keras.layers.Input(shape=(2,), name=FEATURES)
    dense = keras.layers.Dense(1, name="logit")
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([LOGIT_WEIGHTS, np.array([LOGIT_BIAS])])

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name=FEATURES)])
    def serve(features: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"logits": model(features, training=False)}

    records = [tf.train.Example(features=tf.train.Features(feature={
        FEATURES: tf.train.Feature(float_list=tf.train.FloatList(value=row.tolist())),
        "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))})).SerializeToString()
        for row, label in zip(x, labels, strict=True)]
    search_rows = np.arange(200, 500)
    artifact = _model_artifact(root, model, {"serving_features": serve.get_concrete_function()})
    return {"model": artifact, **_datasets(root, records, np.arange(200), search_rows),
            "search_x": x[search_rows], "search_labels": labels[search_rows]}


def test_with_logits_the_search_scores_sigmoid_probabilities_not_raw_logits(binary_logits, tmp_path) -> None:
    search = {"label_key": "y", "metric": "accuracy", "max_delta": 0.05, "max_trials": 1, "output_kind": "logits"}
    _do(binary_logits, str(tmp_path / "out"), search, signature="serving_features", io_dtype="float32")
    with open(tmp_path / "out" / properties.QUANTIZATION_REPORT_FILENAME) as f:
        section = json.load(f)["search"]
    logits = (binary_logits["search_x"].astype(np.float64) @ LOGIT_WEIGHTS)[:, 0] + LOGIT_BIAS
    labels = binary_logits["search_labels"]
    # What a probability export of the same weights scores: sigmoid(logit) > 0.5.
    by_hand = float(np.mean(((1 / (1 + np.exp(-logits))) > 0.5) == labels))
    raw = float(np.mean((logits > 0.5) == labels))  # what the search scored before output_kind
    assert np.mean(logits < 0) > 0.5 and by_hand - raw > 0.1
    assert section["float_metric_value"] == pytest.approx(by_hand, abs=1e-9)
    assert section["config"]["output_kind"] == "logits"
    # The candidate's predictions went through the same sigmoid: scored raw, it would be ~by_hand - raw worse.
    (candidate,) = section["candidates"]
    assert candidate["passed"] and abs(candidate["delta"]) <= 0.05
    assert candidate["metric_value"] == pytest.approx(by_hand, abs=0.05)


def test_output_kind_defaults_to_probabilities_and_old_configs_still_parse() -> None:
    config = SearchConfig.from_mapping({"label_key": LABEL})
    assert config.output_kind == "probabilities"
    old = json.dumps({k: v for k, v in json.loads(config.to_json()).items() if k != "output_kind"})
    assert parse_search_config(old) == config
