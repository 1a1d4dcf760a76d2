"""TransformedInputs and vocabulary_files on a real (tiny) TFT transform graph: 50 in-memory rows, no pipeline."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from components.shared.signature_inputs import InputSpec
from components.shared.transform_inputs import TransformedInputs, vocabulary_files

NUM_ROWS = 50
COLORS = ("red", "green", "blue")
RAW_FEATURE_SPEC = {
    "x": tf.io.FixedLenFeature([1], tf.float32),
    "y": tf.io.FixedLenFeature([1], tf.float32),
    "color": tf.io.FixedLenFeature([1], tf.string),
    "maybe": tf.io.VarLenFeature(tf.float32),   # missing from some rows, filled in with 0
    "label": tf.io.FixedLenFeature([1], tf.int64),
}
SPECS = [
    InputSpec("color_xf", np.dtype(np.int32), (None, 1)),
    InputSpec("maybe_xf", np.dtype(np.float32), (None, 1)),
    InputSpec("x_xf", np.dtype(np.float32), (None, 1)),
    InputSpec("y_xf", np.dtype(np.float32), (None, 1)),
]


def _fill_in_missing(x: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    if not isinstance(x, tf.sparse.SparseTensor):
        return x
    default = "" if x.dtype == tf.string else 0
    return tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default)


def _preprocessing_fn(inputs: dict) -> dict:
    return {
        "x_xf": tft.scale_to_z_score(inputs["x"]),
        "y_xf": tft.bucketize(inputs["y"], 4),
        "color_xf": tft.compute_and_apply_vocabulary(inputs["color"], num_oov_buckets=2, vocab_filename="color"),
        "maybe_xf": _fill_in_missing(inputs["maybe"]) * 2.0,
        "label_xf": inputs["label"] * 10,
    }


def _rows() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(NUM_ROWS):
        row = {"x": [float(rng.normal(5.0, 2.0))], "y": [float(i)], "color": [COLORS[i % 7 % 3]], "label": [i % 2]}
        row["maybe"] = [float(i)] if i % 5 else []
        rows.append(row)
    return rows


def _serialize(row: dict, drop: tuple[str, ...] = ()) -> bytes:
    feature = {}
    for key, values in row.items():
        if key in drop:
            continue
        if key == "color":
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
        elif key == "label":
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        elif values:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def transform_graph(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("tft")
    output = str(root / "transform_graph")
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_FEATURE_SPEC))
    with tft_beam.Context(temp_dir=str(root / "tmp")):
        _, transform_fn = (_rows(), metadata) | tft_beam.AnalyzeAndTransformDataset(_preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(output)
    # TFX's Transform writes the raw metadata beside transform_fn/ too; raw_feature_spec() reads it.
    metadata_io.write_metadata(metadata, os.path.join(output, tft.TFTransformOutput.RAW_METADATA_DIR))
    return output


def test_inputs_are_the_transformed_features(transform_graph: str) -> None:
    rows = _rows()
    inputs = TransformedInputs(transform_graph, SPECS)([_serialize(r) for r in rows])

    assert sorted(inputs) == [s.name for s in SPECS]
    for spec in SPECS:
        assert inputs[spec.name].shape == (NUM_ROWS, 1) and inputs[spec.name].dtype == spec.dtype
    x = np.array([r["x"][0] for r in rows])
    np.testing.assert_allclose(inputs["x_xf"][:, 0], (x - x.mean()) / x.std(), rtol=1e-4, atol=1e-5)
    vocab = tft.TFTransformOutput(transform_graph).vocabulary_by_name("color")
    expected_ids = [vocab.index(r["color"][0].encode()) for r in rows]
    np.testing.assert_array_equal(inputs["color_xf"][:, 0], expected_ids)
    np.testing.assert_array_equal(inputs["maybe_xf"][:, 0], [2.0 * r["maybe"][0] if r["maybe"] else 0.0 for r in rows])
    assert set(np.unique(inputs["y_xf"])) == {0.0, 1.0, 2.0, 3.0}  # 4 buckets of 0..49


def test_agrees_with_tft_in_batches_of_any_size(transform_graph: str) -> None:
    rows = _rows()
    transformed = TransformedInputs(transform_graph, SPECS)
    whole = transformed([_serialize(r) for r in rows])
    one = transformed([_serialize(rows[7])])
    for name in whole:
        np.testing.assert_array_equal(one[name], whole[name][7:8])


def test_unlabeled_and_unknown_values(transform_graph: str) -> None:
    transformed = TransformedInputs(transform_graph, SPECS)
    assert transformed.raw_feature_names == ["color", "maybe", "x", "y"]  # not "label": no signature input needs it
    row = {"x": [5.0], "y": [3.0], "color": ["purple"], "label": [1], "maybe": []}
    inputs = transformed([_serialize(row, drop=("label", "maybe"))])  # "maybe" is VarLen: absent is allowed
    assert inputs["color_xf"][0, 0] >= len(COLORS)  # an OOV bucket
    assert inputs["maybe_xf"][0, 0] == 0.0


def test_an_input_the_transform_does_not_produce(transform_graph: str) -> None:
    with pytest.raises(ValueError) as error:
        TransformedInputs(transform_graph, [*SPECS, InputSpec("x", np.dtype(np.float32), (None, 1))])
    message = str(error.value)
    assert transform_graph in message and "['x']" in message
    assert "x_xf" in message and "label_xf" in message  # both sets are listed


def test_examples_that_lack_a_raw_feature(transform_graph: str) -> None:
    transformed = TransformedInputs(transform_graph, SPECS, source="Examples 7 split eval")
    with pytest.raises(ValueError) as error:
        transformed([_serialize(_rows()[1], drop=("x",))])
    message = str(error.value)
    assert "Examples 7 split eval" in message and transform_graph in message and "'x'" in message


def test_no_examples_and_no_transform_graph(transform_graph: str, tmp_path) -> None:
    with pytest.raises(ValueError, match="no examples"):
        TransformedInputs(transform_graph, SPECS)([])
    with pytest.raises(ValueError, match="cannot load the transform graph"):
        TransformedInputs(str(tmp_path / "nothing"), SPECS)


def test_vocabulary_files(transform_graph: str) -> None:
    files = vocabulary_files(transform_graph)
    assert list(files) == ["color"]
    assert os.path.dirname(files["color"]) == os.path.join(transform_graph, "transform_fn", "assets")
    with open(files["color"], "rb") as f:
        assert sorted(f.read().split()) == sorted(c.encode() for c in COLORS)


def test_vocabulary_files_of_a_transform_without_assets(tmp_path) -> None:
    assert vocabulary_files(str(tmp_path)) == {}
