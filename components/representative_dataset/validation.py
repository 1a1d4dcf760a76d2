"""Checks of RepresentativeDatasetGen's inputs that can run before any Beam work, each naming the fix."""

from __future__ import annotations

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import Artifact, artifact_utils

EVAL_SPLIT = "eval"


def check_split(examples: Artifact, split: str, allow_eval_split: bool) -> list[str]:
    """The file patterns of ``split`` in ``examples``; raises ValueError when it cannot be sampled.

    Refused: a split the artifact does not have, the eval split (unless ``allow_eval_split``: calibrating on the
    data the gate evaluates on leaks it into the gate), a split with no files, and a payload other than tf.Example.
    """
    splits = artifact_utils.decode_split_names(examples.split_names)
    if split not in splits:
        raise ValueError(
            f"RepresentativeDatasetGen: split {split!r} is not in the Examples artifact {examples.uri!r} (id "
            f"{examples.id}); its splits are {splits}: pass one of them as split"
        )
    if split == EVAL_SPLIT and not allow_eval_split:
        raise ValueError(
            f"RepresentativeDatasetGen: split {split!r} is the eval split of {examples.uri!r}; calibrating on it "
            "leaks the gate's evaluation data into the quantized model. Use split='train' (or another split), or "
            "pass allow_eval_split=True if that is intended"
        )
    payload_format = examples_utils.get_payload_format(examples)
    if payload_format != example_gen_pb2.FORMAT_TF_EXAMPLE:
        raise ValueError(
            f"RepresentativeDatasetGen: Examples artifact {examples.uri!r} holds "
            f"{example_gen_pb2.PayloadFormat.Name(payload_format)}, only FORMAT_TF_EXAMPLE is supported; "
            "feed the examples output of an ExampleGen that writes tf.Examples"
        )
    patterns = examples_utils.get_split_file_patterns([examples], split)
    if not any(tf.io.gfile.glob(pattern) for pattern in patterns):
        raise ValueError(
            f"RepresentativeDatasetGen: split {split!r} of Examples artifact {examples.uri!r} is empty (no file "
            f"matches {patterns}); pass a split that has examples"
        )
    return patterns


def check_label_key(schema: schema_pb2.Schema | None, label_key: str | None) -> None:
    """Raises ValueError when a schema is given and ``label_key`` is not one of its features."""
    if schema is None or label_key is None:
        return
    features = sorted(f.name for f in schema.feature)
    if label_key not in features:
        raise ValueError(
            f"RepresentativeDatasetGen: label_key {label_key!r} is not in the schema (features: {features}); "
            "pass the name of the label feature as label_key"
        )
