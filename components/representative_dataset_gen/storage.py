"""The on-disk layout of a ``RepresentativeDataset`` artifact, shared by its writer and its readers.

``<uri>/data.tfrecord.gz``: gzipped TFRecord of the sampled serialized tf.Examples, bytes unchanged, in rank order.
``<uri>/manifest.json``: what was sampled, from where, and the sha256 of ``data.tfrecord.gz``.

The manifest is written last, so an artifact directory that has it is complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

import tensorflow as tf
from tfx.dsl.io import fileio

from quantgate.components.shared import properties, strict_json
from quantgate.components.shared.digests import file_sha256

DATA_FILENAME = properties.REPRESENTATIVE_DATA_FILENAME
MANIFEST_FILENAME = properties.REPRESENTATIVE_MANIFEST_FILENAME
MANIFEST_FORMAT_VERSION = 1


def data_path(artifact_uri: str) -> str:
    """Path of the sampled examples inside a RepresentativeDataset artifact."""
    return os.path.join(artifact_uri, DATA_FILENAME)


def manifest_path(artifact_uri: str) -> str:
    """Path of the manifest inside a RepresentativeDataset artifact."""
    return os.path.join(artifact_uri, MANIFEST_FILENAME)


def _require_file(artifact_uri: str, path: str) -> None:
    if not fileio.exists(path):
        raise FileNotFoundError(
            f"RepresentativeDataset artifact at {artifact_uri!r} has no {os.path.basename(path)!r}: pass the uri of "
            "a representative_dataset output of RepresentativeDatasetGen (an incomplete artifact has no manifest)"
        )


def read_examples(artifact_uri: str) -> list[bytes]:
    """The sampled serialized tf.Examples of a RepresentativeDataset artifact, in rank order."""
    path = data_path(artifact_uri)
    _require_file(artifact_uri, path)
    return [record.numpy() for record in tf.data.TFRecordDataset(path, compression_type="GZIP")]


def read_manifest(artifact_uri: str) -> dict[str, Any]:
    """The parsed ``manifest.json`` of a RepresentativeDataset artifact."""
    path = manifest_path(artifact_uri)
    _require_file(artifact_uri, path)
    with fileio.open(path, "r") as f:
        return json.load(f)


def write_representative_dataset(output_dir: str, records: Iterable[bytes], manifest: dict[str, Any]) -> dict[str, Any]:
    """Writes ``records`` and the manifest (plus ``sha256`` and ``format_version``) into ``output_dir``.

    TensorFlow's GZIP writer leaves the gzip header's mtime at 0, so the same records give the same bytes.
    Returns the manifest as written.
    """
    fileio.makedirs(output_dir)
    path = data_path(output_dir)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in records:
            writer.write(record)
    written = {"format_version": MANIFEST_FORMAT_VERSION, "data_file": DATA_FILENAME, **manifest,
               "sha256": file_sha256(path)}
    with fileio.open(manifest_path(output_dir), "w") as f:
        f.write(strict_json.dumps(written, indent=2, sort_keys=True) + "\n")
    return written
