"""Raw serialized tf.Examples -> a TFT transform graph -> a dense signature's inputs (the transformed features).

For a Trainer that trains on Transform's output, the model's dense signature takes *transformed* features
(z-scores, vocabulary ids, bucket ids), which raw examples do not carry. ``TransformedInputs`` parses the raw examples
with the transform's raw feature spec (one ``tf.io.parse_example`` per batch), applies
``tft.TFTransformOutput(uri).transform_features_layer()`` (loaded once, in one traced ``tf.function``) and returns one
``[n, *dims]`` array per signature input, cast to the input's dtype: the same dict ``signature_inputs
.examples_to_inputs`` returns for raw dense signatures, so calibration and both models can be fed either way.

Only the raw features the signature's inputs depend on are parsed (found once, when the object is built), so
unlabeled examples work when the label's transform is not a model input. Non-finite outputs are the caller's
business (``signature_inputs.nonfinite_counts``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components.shared.signature_inputs import InputSpec, cast_to_input

TRANSFORM_FN_DIR = "transform_fn"
ASSETS_DIR = "assets"
TRANSFORMED_METADATA_DIR = "transformed_metadata"
ASSET_MAP_FILE = "asset_map"

_MISSING_FEATURE = re.compile(r"Feature: (\S+) \(data type: \w+\) is required but could not be found")


def _dummy_value(spec: object) -> object:
    """The spec with a default value, so that an empty tf.Example parses into a one-row placeholder batch."""
    if isinstance(spec, tf.io.FixedLenFeature) and spec.default_value is None:
        fill = "" if spec.dtype == tf.string else 0
        return tf.io.FixedLenFeature(spec.shape, spec.dtype, default_value=np.full(spec.shape, fill).tolist())
    return spec


def _load(uri: str) -> tuple[tft.TFTransformOutput, dict[str, object], dict[str, object]]:
    """The transform output and its raw and transformed feature specs."""
    try:
        output = tft.TFTransformOutput(uri)
        return output, output.raw_feature_spec(), output.transformed_feature_spec()
    except Exception as e:  # a missing folder or a damaged schema: say which artifact
        raise ValueError(
            f"cannot load the transform graph at {uri}: {e}. Wire Transform's transform_graph "
            "output (a folder holding transform_fn/ and transformed_metadata/)."
        ) from e


def transformed_feature_specs(transform_graph_uri: str) -> dict[str, InputSpec]:
    """The transform's dense outputs (``FixedLenFeature``) as input specs, by name: a label or slicing feature that
    exists only after the transform is read through ``TransformedInputs`` with one of these.

    Raises:
      ValueError: the transform graph cannot be loaded.
    """
    _, _, transformed = _load(transform_graph_uri)
    return {
        name: InputSpec(name=name, dtype=np.dtype(spec.dtype.as_numpy_dtype), shape=(None, *spec.shape))
        for name, spec in sorted(transformed.items())
        if isinstance(spec, tf.io.FixedLenFeature)
    }


class TransformedInputs:
    """Serialized raw tf.Examples -> the transformed inputs of a dense signature, through a TFT transform graph.

    Build it once (per Beam worker: in ``DoFn.setup``); it loads the transform graph and traces one function.

    Args:
      transform_graph_uri: the uri of Transform's ``transform_graph`` artifact (``transform_fn/`` and
        ``transformed_metadata/`` below it).
      specs: the model's dense signature inputs (``dense_signature_specs``); their names are transformed feature names.
      source: where the examples come from (artifact and split), named in errors.

    Raises:
      ValueError: a signature input that the transform does not produce (the message lists both sets), or the
        transform graph cannot be loaded.
    """

    def __init__(self, transform_graph_uri: str, specs: Sequence[InputSpec], *, source: str = "the examples") -> None:
        if not specs:
            raise ValueError(f"transform graph {transform_graph_uri}: no signature inputs were given")
        self.uri = transform_graph_uri
        self.source = source
        self._specs = list(specs)
        self._output, raw_spec, transformed_spec = _load(transform_graph_uri)
        produced = set(transformed_spec)
        names = [spec.name for spec in self._specs]
        missing = sorted(set(names) - produced)
        if missing:
            raise ValueError(
                f"transform graph {transform_graph_uri} does not produce the signature inputs {missing}. "
                f"Signature inputs: {sorted(names)}; transformed features: {sorted(produced)}. Export the dense "
                "signature over the transformed feature names (the keys preprocessing_fn returns), or wire the "
                "transform graph the model was trained with."
            )
        self._layer = self._output.transform_features_layer()
        self.raw_feature_names = self._required_raw_features(raw_spec, names)
        self._parse_spec = {name: raw_spec[name] for name in self.raw_feature_names}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def transform(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
            transformed = self._layer(tf.io.parse_example(serialized, self._parse_spec))
            return {name: transformed[name] for name in names}

        self._transform = transform

    def _required_raw_features(self, raw_spec: Mapping[str, object], names: Sequence[str]) -> list[str]:
        """The raw features without which some signature input is not computed (leave one out, on a placeholder row).

        The TF2 transform layer drops every output that depends on a raw feature it was not given, so a feature is
        required exactly when leaving it out drops one of ``names``.
        """
        placeholder = tf.io.parse_example(tf.constant([b""]), {k: _dummy_value(v) for k, v in raw_spec.items()})
        produced = set(self._layer(placeholder))
        absent = sorted(set(names) - produced)
        if absent:  # the schema says they exist but the graph does not compute them from the raw features
            raise ValueError(
                f"transform graph {self.uri} does not compute the signature inputs {absent} from the raw features "
                f"{sorted(raw_spec)}; it computes {sorted(produced)}."
            )
        required = []
        for feature in sorted(raw_spec):
            rest = {k: v for k, v in placeholder.items() if k != feature}
            if not set(names) <= set(self._layer(rest)):
                required.append(feature)
        return required

    @property
    def input_specs(self) -> list[InputSpec]:
        """The signature inputs this object produces."""
        return list(self._specs)

    def __call__(self, serialized: Sequence[bytes]) -> dict[str, np.ndarray]:
        """Transforms one batch of serialized raw tf.Examples into one ``[n, *dims]`` array per signature input.

        Raises:
          ValueError: no examples; the examples lack a raw feature the transform needs, or hold it with the wrong
            type or number of values; a transformed input is sparse or does not fit the input's shape.
        """
        if len(serialized) == 0:
            raise ValueError(f"{self.source}: no examples to transform; it must hold at least one tf.Example.")
        try:
            outputs = self._transform(tf.constant(list(serialized), dtype=tf.string))
        except tf.errors.InvalidArgumentError as e:
            found = _MISSING_FEATURE.search(e.message)
            what = (f"the examples lack the raw feature {found.group(1)!r}" if found
                    else "the examples do not match the transform's raw feature spec")
            raise ValueError(
                f"{self.source}: {what}, which transform graph {self.uri} needs to compute the signature inputs "
                f"(raw features needed: {self.raw_feature_names}; parser: {e.message.splitlines()[0]}). Feed raw "
                "examples as Transform saw them (ExampleGen's output, not Transform's transformed_examples)."
            ) from e
        n = len(serialized)
        inputs = {}
        for spec in self._specs:
            value = outputs[spec.name]
            if not isinstance(value, tf.Tensor):
                raise ValueError(
                    f"transform graph {self.uri}: the signature input {spec.name!r} is a {type(value).__name__}, "
                    "not a dense tensor. Make preprocessing_fn return it dense (e.g. fill in missing values and "
                    "tf.sparse.to_dense, as TFX's taxi example does)."
                )
            dims = spec.example_dims
            array = value.numpy()
            if array.size != n * int(np.prod(dims, dtype=np.int64)):
                raise ValueError(
                    f"transform graph {self.uri}: the signature input {spec.name!r} has shape {list(array.shape)} "
                    f"for {n} examples, which does not fit the input shape {spec.shape}. Export the signature with "
                    "the transformed feature's shape."
                )
            inputs[spec.name] = cast_to_input(array.reshape((n, *dims)), spec, f"transform graph {self.uri}")
        return inputs


def vocabulary_files(transform_graph_uri: str) -> dict[str, str]:
    """The transform's vocabulary assets: vocabulary name -> path of its file in ``transform_fn/assets``.

    A file is named by its ``tft.annotate_asset`` key when the transform's asset map has one, else by its file name
    (``vocab_filename`` in ``tft.compute_and_apply_vocabulary``); each file once. An empty dict without assets.
    """
    assets = os.path.join(transform_graph_uri, TRANSFORM_FN_DIR, ASSETS_DIR)
    files = {}
    if tf.io.gfile.isdir(assets):
        for name in sorted(tf.io.gfile.listdir(assets)):
            path = os.path.join(assets, name)
            if not tf.io.gfile.isdir(path):
                files[name] = path
    asset_map = os.path.join(transform_graph_uri, TRANSFORMED_METADATA_DIR, ASSET_MAP_FILE)
    if tf.io.gfile.exists(asset_map):
        with tf.io.gfile.GFile(asset_map) as f:
            for key, filename in json.load(f).items():
                if filename in files and key not in files:  # one name per file: the annotated one
                    files[key] = files.pop(filename)
    return files
