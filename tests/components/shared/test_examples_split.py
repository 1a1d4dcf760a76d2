"""examples_split.py: the split check every component that reads a split runs before any Beam work."""

from __future__ import annotations

import pytest

from quantgate.components.shared.examples_split import tf_example_split_patterns

from ..conftest import penguin_like_example


def test_patterns_of_an_existing_split(make_examples) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1)], "eval": [penguin_like_example(1, 0)]})
    (pattern,) = tf_example_split_patterns(examples, "eval", component="C")
    assert pattern.endswith("Split-eval/*")


def test_a_missing_split_names_the_component_and_the_splits_there_are(make_examples) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1)]})
    with pytest.raises(ValueError, match=r"^Comp: split 'test' is not in .* its splits are \['train'\]"):
        tf_example_split_patterns(examples, "test", component="Comp")


def test_a_split_without_files_is_refused(make_examples, tmp_path) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1)]})
    examples.uri = str(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="Comp: split 'train' of Examples artifact .* is empty"):
        tf_example_split_patterns(examples, "train", component="Comp")


def test_a_payload_other_than_tf_example_is_refused(make_examples) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1)]})
    examples.set_string_custom_property("payload_format", "FORMAT_PARQUET")
    with pytest.raises(ValueError, match="holds FORMAT_PARQUET, only FORMAT_TF_EXAMPLE"):
        tf_example_split_patterns(examples, "train", component="Comp")
