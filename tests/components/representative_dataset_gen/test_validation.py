"""validation.py: every input refused before Beam starts names the artifact, the field and the fix."""

from __future__ import annotations

import pytest
from tensorflow_metadata.proto.v0 import schema_pb2

from quantgate.components.representative_dataset_gen.validation import check_label_key, check_split

from ..conftest import penguin_like_example


def test_a_good_split_gives_its_file_patterns(make_examples) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1)], "eval": [penguin_like_example(1, 0)]})
    (pattern,) = check_split(examples, "train", allow_eval_split=False)
    assert pattern.endswith("Split-train/*")


def test_a_missing_split_lists_the_splits_that_exist(make_examples) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1)], "eval": [penguin_like_example(1, 0)]})
    with pytest.raises(ValueError, match=r"split 'test' is not in the Examples artifact .*\['train', 'eval'\]"):
        check_split(examples, "test", allow_eval_split=False)


def test_the_eval_split_is_refused_unless_allowed(make_examples) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1)], "eval": [penguin_like_example(1, 0)]})
    with pytest.raises(ValueError, match="eval split .* leaks .* allow_eval_split=True"):
        check_split(examples, "eval", allow_eval_split=False)
    assert check_split(examples, "eval", allow_eval_split=True)


def test_a_split_without_files_is_empty(make_examples, tmp_path) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1)]})
    (tmp_path / "examples" / "Split-train" / "data_tfrecord-00000-of-00001.gz").unlink()
    with pytest.raises(ValueError, match="split 'train' of Examples artifact .* is empty"):
        check_split(examples, "train", allow_eval_split=False)


def test_a_payload_other_than_tf_example_is_refused(make_examples) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1)]})
    examples.set_string_custom_property("payload_format", "FORMAT_PARQUET")
    with pytest.raises(ValueError, match="holds FORMAT_PARQUET, only FORMAT_TF_EXAMPLE"):
        check_split(examples, "train", allow_eval_split=False)


def test_label_key_must_be_in_the_schema() -> None:
    schema = schema_pb2.Schema()
    schema.feature.add(name="species")
    schema.feature.add(name="island")
    check_label_key(schema, "species")
    check_label_key(None, "anything")  # no schema wired: the examples are checked while sampling
    with pytest.raises(ValueError, match=r"label_key 'label' is not in the schema \(features: \['island', 'species'\]\)"):
        check_label_key(schema, "label")
