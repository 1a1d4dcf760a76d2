"""Fixtures for the components' tests: small real Examples artifacts laid out as ExampleGen writes them."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tfx.types import Artifact, artifact_utils, standard_artifacts

MakeExamples = Callable[[dict[str, list[bytes]]], Artifact]


def penguin_like_example(index: int, species: int | None) -> bytes:
    """A serialized tf.Example with one float feature and, unless ``None``, an int ``species`` label."""
    example = example_pb2.Example()
    example.features.feature["bill_length_mm"].float_list.value.append(30.0 + index)
    if species is not None:
        example.features.feature["species"].int64_list.value.append(species)
    return example.SerializeToString()


@pytest.fixture
def make_examples(tmp_path) -> MakeExamples:
    """Writes an Examples artifact (gzipped TFRecord per split, as ExampleGen lays it out) with the given records."""

    def make(splits: dict[str, list[bytes]]) -> Artifact:
        artifact = standard_artifacts.Examples()
        artifact.uri = str(tmp_path / "examples")
        artifact.id = 42
        artifact.split_names = artifact_utils.encode_split_names(list(splits))
        for split, records in splits.items():
            split_dir = os.path.join(artifact.uri, f"Split-{split}")
            tf.io.gfile.makedirs(split_dir)
            with tf.io.TFRecordWriter(os.path.join(split_dir, "data_tfrecord-00000-of-00001.gz"), "GZIP") as w:
                for record in records:
                    w.write(record)
        return artifact

    return make


