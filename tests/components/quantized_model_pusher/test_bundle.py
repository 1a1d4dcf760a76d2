"""bundle: class names for labels.txt from the label vocabulary, the schema's domains or the indices (pure)."""

from __future__ import annotations

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from quantgate.components.quantized_model_pusher import bundle


def _schema(text: str) -> schema_pb2.Schema:
    return text_format.Parse(text, schema_pb2.Schema())


def test_the_label_vocabulary_comes_first_and_keeps_its_order() -> None:
    schema = _schema('feature { name: "species" string_domain { value: "x" value: "y" } }')
    names, source, skipped = bundle.class_labels(2, "species", {"species": b"Gentoo\nAdelie\n", "island": b"a\n"},
                                                 schema)
    assert (names, source, skipped) == (["Gentoo", "Adelie"], "transform vocabulary 'species'", [])


def test_a_vocabulary_of_another_length_is_passed_over_for_the_schema() -> None:
    schema = _schema('feature { name: "species" string_domain { value: "x" value: "y" value: "z" } }')
    names, source, skipped = bundle.class_labels(3, "species", {"species": b"a\nb\n"}, schema)
    assert names == ["x", "y", "z"] and source == "schema string_domain of 'species'"
    assert skipped == ["transform vocabulary 'species' has 2 terms for 3 outputs"]


def test_an_int_domain_from_zero_names_the_classes_by_value() -> None:
    schema = _schema('feature { name: "label" int_domain { min: 0 max: 1 } }')
    assert bundle.class_labels(2, "label", {}, schema)[:2] == (["0", "1"], "schema int_domain of 'label'")
    shifted = _schema('feature { name: "label" int_domain { min: 1 max: 2 } }')  # ids are not the values
    assert bundle.class_labels(2, "label", {}, shifted)[1].startswith("indices")


def test_without_a_label_key_the_classes_are_indices() -> None:
    names, source, skipped = bundle.class_labels(3, None, {"species": b"a\nb\nc\n"}, None)
    assert names == ["0", "1", "2"] and source.startswith("indices") and skipped == []
    assert bundle.labels_text(names) == b"0\n1\n2\n"


def test_num_classes_is_the_single_outputs_last_dimension() -> None:
    assert bundle.num_classes({"outputs": [{"shape": [None, 3]}]}) == 3
    assert bundle.num_classes({"outputs": [{"shape": [None, 3]}, {"shape": [None, 1]}]}) is None


def test_the_blessings_metric_names_the_task() -> None:
    assert [bundle.metric_task(m) for m in ("accuracy", "auc", "mse", "mae")] == [
        "classification", "classification", "regression", "regression"]
    # No metric, or one quantgate does not gate (a stock Evaluator's blessing): no task, the label key decides.
    assert bundle.metric_task(None) is None and bundle.metric_task("binary_accuracy") is None
