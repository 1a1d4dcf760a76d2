"""TransformedInputs and vocabulary_files on a real (tiny) TFT transform graph: 50 in-memory rows, no pipeline."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from quantgate.components.shared.signature_inputs import InputSpec
from quantgate.components.shared.transform_inputs import TransformedInputs, vocabulary_files

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


# An image transform: PNG bytes in a tf.Example bytes_list, decoded and resized in preprocessing_fn, as TFX's image
# examples do. Its asserts fail on the defaults a placeholder example would hold (x = 0, label = 0), and the label's
# transform is not a model input, so unlabeled records must work without the label's assert ever running.
IMAGE_SIZE = 6
NUM_IMAGES = 40
IMAGE_FEATURE_SPEC = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "x": tf.io.FixedLenFeature([1], tf.float32),
    "label": tf.io.FixedLenFeature([1], tf.int64),
}
IMAGE_SPEC = InputSpec("image_xf", np.dtype(np.float32), (None, IMAGE_SIZE, IMAGE_SIZE, 1))


def _decode(png: tf.Tensor) -> tf.Tensor:
    """PNG bytes [n] -> float images [n, IMAGE_SIZE, IMAGE_SIZE, 1] in [0, 1]: the transform and the reference."""
    images = tf.map_fn(lambda b: tf.io.decode_png(b, channels=1), png,
                       fn_output_signature=tf.TensorSpec([None, None, 1], tf.uint8))
    return tf.image.resize(tf.cast(images, tf.float32), [IMAGE_SIZE, IMAGE_SIZE]) / 255.0


def _image_preprocessing_fn(inputs: dict) -> dict:
    tf.debugging.assert_positive(inputs["x"], message="x must be positive")
    tf.debugging.assert_positive(inputs["label"], message="labels are 1..10")
    return {"image_xf": _decode(inputs["image"]), "x_xf": tft.scale_to_z_score(inputs["x"]),
            "label_xf": inputs["label"] - 1}


def _image_rows() -> list[dict]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return [{"image": tf.io.encode_png((digits.images[i][..., None] * 15).astype(np.uint8)).numpy(),
             "x": [float(i + 1)], "label": [int(digits.target[i]) + 1]} for i in range(NUM_IMAGES)]


def _serialize_image_row(row: dict, drop: tuple[str, ...] = ()) -> bytes:
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[row["image"]])),
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=row["x"])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=row["label"])),
    }
    return tf.train.Example(features=tf.train.Features(
        feature={k: v for k, v in feature.items() if k not in drop})).SerializeToString()


@pytest.fixture(scope="module")
def image_transform_graph(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("tft_image")
    output = str(root / "transform_graph")
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(IMAGE_FEATURE_SPEC))
    with tft_beam.Context(temp_dir=str(root / "tmp")):
        _, transform_fn = (_image_rows(), metadata) | tft_beam.AnalyzeAndTransformDataset(_image_preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(output)
    metadata_io.write_metadata(metadata, os.path.join(output, tft.TFTransformOutput.RAW_METADATA_DIR))
    return output


def test_the_old_placeholder_probe_fails_on_this_graph(image_transform_graph: str) -> None:
    # The premise of the image tests: running the transform on an empty example (what the raw features used to be
    # learnt from) fails in decode_png / the asserts, so nothing below may run it on made-up values.
    layer = tft.TFTransformOutput(image_transform_graph).transform_features_layer()
    placeholder = tf.io.parse_example(tf.constant([b""]), {
        "image": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "x": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
        "label": tf.io.FixedLenFeature([1], tf.int64, default_value=[0])})
    with pytest.raises(tf.errors.InvalidArgumentError):
        layer(placeholder)


def test_png_images_are_decoded_as_the_transform_does(image_transform_graph: str) -> None:
    rows = _image_rows()
    transformed = TransformedInputs(image_transform_graph, [IMAGE_SPEC])
    assert transformed.raw_feature_names == ["image"]  # found from the graph, not by running it
    inputs = transformed([_serialize_image_row(r) for r in rows])

    assert list(inputs) == ["image_xf"]
    assert inputs["image_xf"].shape == (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE, 1)
    assert inputs["image_xf"].dtype == np.float32
    expected = _decode(tf.constant([r["image"] for r in rows])).numpy()
    np.testing.assert_allclose(inputs["image_xf"], expected, rtol=1e-6, atol=1e-6)
    assert 0.0 <= inputs["image_xf"].min() and inputs["image_xf"].max() <= 1.0 and inputs["image_xf"].std() > 0.1
    # One record at a time gives the same rows (the batch dimension is the only dynamic one).
    np.testing.assert_array_equal(transformed([_serialize_image_row(rows[3])])["image_xf"],
                                  inputs["image_xf"][3:4])


def test_asserts_run_on_real_records_and_unlabeled_records_work(image_transform_graph: str) -> None:
    rows = _image_rows()
    specs = [IMAGE_SPEC, InputSpec("x_xf", np.dtype(np.float32), (None, 1))]
    transformed = TransformedInputs(image_transform_graph, specs)
    assert transformed.raw_feature_names == ["image", "x"]  # not "label": no signature input needs it
    inputs = transformed([_serialize_image_row(r, drop=("label",)) for r in rows])  # the label's assert never runs
    x = np.array([r["x"][0] for r in rows])
    np.testing.assert_allclose(inputs["x_xf"][:, 0], (x - x.mean()) / x.std(), rtol=1e-4, atol=1e-5)
    assert inputs["image_xf"].shape == (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE, 1)
    # The label through the transform (as the evaluator reads a label that exists only after it): its assert runs
    # on the real labels, which pass.
    labels = TransformedInputs(image_transform_graph, [InputSpec("label_xf", np.dtype(np.int64), (None, 1))])
    assert labels.raw_feature_names == ["label"]
    np.testing.assert_array_equal(labels([_serialize_image_row(r) for r in rows])["label_xf"][:, 0],
                                  [r["label"][0] - 1 for r in rows])


@pytest.mark.parametrize("bad_png", [b"not a png at all", b""], ids=["corrupt", "empty"])
def test_a_record_the_transform_rejects(image_transform_graph: str, bad_png: bytes) -> None:
    rows = _image_rows()[:6]
    rows[3] = {**rows[3], "image": bad_png}
    transformed = TransformedInputs(image_transform_graph, [IMAGE_SPEC], source="Examples 12 split eval")
    with pytest.raises(ValueError) as error:
        transformed([_serialize_image_row(r) for r in rows])
    message = str(error.value)
    assert "Examples 12 split eval" in message and image_transform_graph in message
    assert "record 3 of a batch of 6" in message and "raw feature 'image'" in message
    assert "image" in message.lower() and "ExampleGen" in message  # what TF said, and the fix
    assert "Traceback" not in message and "[[{{" not in message


def test_a_failed_assert_names_the_feature_it_checks(image_transform_graph: str) -> None:
    rows = _image_rows()[:5]
    rows[1] = {**rows[1], "x": [-2.0]}
    specs = [IMAGE_SPEC, InputSpec("x_xf", np.dtype(np.float32), (None, 1))]
    with pytest.raises(ValueError) as error:
        TransformedInputs(image_transform_graph, specs, source="RepresentativeDataset 3")(
            [_serialize_image_row(r) for r in rows])
    message = str(error.value)
    assert "RepresentativeDataset 3" in message and "record 1 of a batch of 5" in message
    assert "raw feature 'x'" in message and "x must be positive" in message


def test_fallback_learns_the_raw_features_from_real_records(transform_graph: str, image_transform_graph: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from quantgate.components.shared import transform_inputs

    rows = _rows()
    structural = TransformedInputs(transform_graph, SPECS)([_serialize(r) for r in rows])

    def unreadable(imported: object) -> None:
        raise transform_inputs._Unreadable("simulated: a graph this module cannot read")

    monkeypatch.setattr(transform_inputs, "_TransformStructure", unreadable)
    transformed = TransformedInputs(transform_graph, SPECS)
    assert transformed.raw_feature_names is None  # nothing is run before there are real records
    inputs = transformed([_serialize(r) for r in rows])
    assert transformed.raw_feature_names == ["color", "maybe", "x", "y"]
    for name in structural:
        np.testing.assert_array_equal(inputs[name], structural[name])
    # A later batch without labels still works: the label was not required.
    transformed([_serialize(rows[0], drop=("label",))])
    # A rejected record is still a clear error (without the graph, the feature is one of those it reads).
    images = _image_rows()[:3]
    images[2] = {**images[2], "image": b"junk"}
    with pytest.raises(ValueError, match=r"Examples 1 split train: .* fails on .*'image'.*ExampleGen"):
        TransformedInputs(image_transform_graph, [IMAGE_SPEC], source="Examples 1 split train")(
            [_serialize_image_row(r) for r in images])


def test_a_derived_function_whose_inputs_the_transform_does_not_make_is_refused(image_transform_graph,
                                                                                 tmp_path) -> None:
    import tf_keras as keras

    from quantgate.components.quantizer.executor import quantize
    from quantgate.components.quantizer.options import resolve_options

    pixels = keras.Input(shape=(6, 6, 1), name="pixels_xf")
    model = keras.Model(inputs={"pixels_xf": pixels}, outputs=keras.layers.Dense(3)(keras.layers.Flatten()(pixels)))
    spec = {"pixels_xf": tf.io.FixedLenFeature([6, 6, 1], tf.float32)}
    serve = tf.function(lambda serialized: {"outputs": model(tf.io.parse_example(serialized, spec))},
                        input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    # Saved as a TFX Trainer saves it: only a serialized tf.Example signature, so the Keras call is derived.
    tf.saved_model.save(model, str(tmp_path / "model" / "Format-Serving"),
                        signatures={"serving_default": serve.get_concrete_function()})
    output = tmp_path / "quantized"
    output.mkdir()
    with pytest.raises(ValueError) as error:
        quantize(str(tmp_path / "model"), None, str(output), resolve_options("dynamic_range"), None,
                 transform_graph_uri=image_transform_graph)
    message = str(error.value)
    assert "signature '__call__'" in message and image_transform_graph in message
    assert "['pixels_xf']" in message and "image_xf" in message  # what the model takes, what the transform makes
    assert not os.listdir(output)
