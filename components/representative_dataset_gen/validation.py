"""Checks of RepresentativeDatasetGen's inputs that can run before any Beam work, each naming the fix."""

from __future__ import annotations

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import Artifact

from quantgate.components.shared.examples_split import tf_example_split_patterns

EVAL_SPLIT = "eval"


def check_split(examples: Artifact, split: str, allow_eval_split: bool) -> list[str]:
    """The file patterns of ``split`` in ``examples``; raises ValueError when it cannot be sampled.

    Refused: what ``tf_example_split_patterns`` refuses (a split the artifact does not have, a payload other than
    tf.Example, a split with no files) and the eval split unless ``allow_eval_split``: calibrating on the data the
    gate evaluates on leaks it into the gate.
    """
    patterns = tf_example_split_patterns(examples, split, component="RepresentativeDatasetGen")
    if split == EVAL_SPLIT and not allow_eval_split:
        raise ValueError(
            f"RepresentativeDatasetGen: split {split!r} is the eval split of {examples.uri!r}; calibrating on it "
            "leaks the gate's evaluation data into the quantized model. Use split='train' (or another split), or "
            "pass allow_eval_split=True if that is intended"
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
