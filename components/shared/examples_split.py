"""Where a split of an Examples artifact lives: the check every quantgate component that reads a split runs first."""

from __future__ import annotations

import tensorflow as tf
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import Artifact, artifact_utils


def tf_example_split_patterns(examples: Artifact, split: str, *, component: str) -> list[str]:
    """The file patterns of ``split`` in ``examples``.

    Raises:
      ValueError (prefixed with ``component``): the artifact has no such split (the message lists those it has),
        its payload is not tf.Example, or no file of the split exists.
    """
    splits = artifact_utils.decode_split_names(examples.split_names)
    if split not in splits:
        raise ValueError(
            f"{component}: split {split!r} is not in the Examples artifact {examples.uri!r} (id {examples.id}); "
            f"its splits are {splits}: pass one of them as split"
        )
    payload_format = examples_utils.get_payload_format(examples)
    if payload_format != example_gen_pb2.FORMAT_TF_EXAMPLE:
        raise ValueError(
            f"{component}: Examples artifact {examples.uri!r} holds "
            f"{example_gen_pb2.PayloadFormat.Name(payload_format)}, only FORMAT_TF_EXAMPLE is supported; "
            "feed the examples output of an ExampleGen that writes tf.Examples"
        )
    patterns = examples_utils.get_split_file_patterns([examples], split)
    if not any(tf.io.gfile.glob(pattern) for pattern in patterns):
        raise ValueError(
            f"{component}: split {split!r} of Examples artifact {examples.uri!r} is empty (no file matches "
            f"{patterns}); pass a split that has examples"
        )
    return patterns
