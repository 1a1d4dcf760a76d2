"""Raw serialized tf.Examples -> a TFT transform graph -> a dense signature's inputs (the transformed features).

For a Trainer that trains on Transform's output, the model's dense signature takes *transformed* features
(z-scores, vocabulary ids, bucket ids, decoded images), which raw examples do not carry. ``TransformedInputs`` parses
the raw examples with the transform's raw feature spec (one ``tf.io.parse_example`` per batch), runs the transform
graph and returns one ``[n, *dims]`` array per signature input, cast to the input's dtype: the same dict
``signature_inputs.examples_to_inputs`` returns for raw dense signatures, so calibration and both models can be fed
either way.

The transform is never run on made-up values: a ``preprocessing_fn`` that decodes (``tf.io.decode_png``) or
validates (``tf.debugging.assert_*``) its input fails on a placeholder. Which raw features each transformed output
needs is read from the structure of the transform's graph (``_TransformStructure``: a walk from each output back to
the input placeholders), and only the subgraph from those features to the needed outputs runs, on the real records.
Only when the graph cannot be read that way (a TF1 export, an unexpected layout) does it fall back to TFT's transform
layer, learning the needed raw features by leaving one out at a time on the first batch of real records.

Unlabeled examples work when the label's transform is not a model input. A record the transform rejects (a corrupt
image, a failed assert) is a ``ValueError`` naming the source, the record and the raw feature. Non-finite outputs
are the caller's business (``signature_inputs.nonfinite_counts``).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow.core.framework import graph_pb2, node_def_pb2

from quantgate.components.shared.signature_inputs import InputSpec, cast_to_input

TRANSFORM_FN_DIR = "transform_fn"
ASSETS_DIR = "assets"
TRANSFORMED_METADATA_DIR = "transformed_metadata"
ASSET_MAP_FILE = "asset_map"

_MISSING_FEATURE = re.compile(r"Feature: (\S+) \(data type: \w+\) is required but could not be found")
# Where TF names the op that failed: "{{node a/b/DecodePng}}", "{{function_node __inference_f_12}}", and
# "Detected at node 'a/b' defined at" (TF 2.16 prints the node name without quotes).
_FAILED_NODE = re.compile(r"\{\{node ([^}]+)\}\}|Detected at node '?([^'\s]+)'? defined at")
_FAILED_FUNCTION = re.compile(r"\{\{function_node ([^}]+)\}\}")
# Error lines that locate the failure but do not say what is wrong with the value (TF's, and the Keras wrapper's
# around TFT's transform layer in the fallback).
_LOCATION_LINE = re.compile(r"^(Graph execution error:|Detected at node|<stack traces unavailable>|\s*File \"|"
                            r"\s*\[\[|\s*$|Exception encountered when calling layer|Call arguments received by layer|\s*•)")
# The name scope the pruned transform is imported under (apart from the wrapper's own placeholders).
_IMPORT_SCOPE = "transform"
# The single-record search for the record a batch failed on stops here (it is only the error path, but a huge
# batch should not turn a refusal into minutes of work).
MAX_RECORDS_SEARCHED = 1000
# In the fallback (no readable structure), the leave-one-out runs on this many of the first batch's records.
FALLBACK_SAMPLE_RECORDS = 64
# Libraries whose custom ops a transform graph may hold: imported (when installed) before loading it, as TFT does.
_ADDON_OP_MODULES = ("struct2tensor", "tensorflow_decision_forests", "tensorflow_text")


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


class _Unreadable(Exception):
    """The transform graph does not have the layout ``_TransformStructure`` reads: use the fallback."""


def _node_name(tensor_or_input: str) -> str:
    """The node of a GraphDef input ("name:0", "name", "^name") or a tensor name."""
    return tensor_or_input.lstrip("^").split(":")[0]


def _called_functions(node: node_def_pb2.NodeDef) -> list[str]:
    """The library functions a node runs: call ops (``PartitionedCall``), ``If``/``While`` branches and bodies."""
    names = []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names.extend(f.name for f in value.list.func)
    if node.op not in ("Placeholder", "Const"):
        names.append(node.op)  # a library function called directly as an op
    return names


class _TransformStructure:
    """The TF2 transform function (the ``transform_fn`` concrete function of the transform SavedModel) as a graph:
    which raw features each transformed output depends on, and the subgraph that computes some outputs from some
    features. Read once from the GraphDef; nothing here runs the transform.

    Dependencies follow data edges. A call or control-flow op (``PartitionedCall``, ``If``, ``While``) needs all of
    its inputs to run, so it depends on all of them: that is what executing the pruned graph requires. Control edges
    are not dependencies (TFT ignores them too: every output of a TFT graph waits on one ``NoOp`` that waits on every
    assert and table lookup); when pruning, a control edge is kept exactly when its op can be computed from the fed
    features, so asserts on fed features still check the real records and asserts on other features never run.

    Raises:
      _Unreadable: not a TF2 transform function, or inputs / outputs laid out unlike TFT's.
    """

    def __init__(self, imported: object) -> None:
        function = getattr(imported, "transform_fn", None)
        graph = getattr(function, "graph", None)
        if graph is None:
            raise _Unreadable("the SavedModel has no transform_fn concrete function (a TF1 export?)")
        args, kwargs = function.structured_input_signature
        if kwargs or len(args) != 1 or not isinstance(args[0], dict):
            raise _Unreadable(f"transform_fn takes {function.structured_input_signature}, not one dict of features")
        n = len(tf.nest.flatten(args[0], expand_composites=True))
        captures = list(graph.internal_captures)
        # A concrete function's graph takes the flat user inputs first, then its captures (tables, analyzer results).
        if len(graph.inputs) != n + len(captures) or any(
                a is not b for a, b in zip(graph.inputs[n:], captures, strict=True)):
            raise _Unreadable("transform_fn's graph inputs are not its flat inputs followed by its captures")
        flat_outputs = tf.nest.flatten(function.structured_outputs, expand_composites=True)
        if not isinstance(function.structured_outputs, dict) or len(flat_outputs) != len(graph.outputs):
            raise _Unreadable("transform_fn's outputs are not one dict of features")
        self._function = function
        self._captured = list(function.captured_inputs)
        self._capture_tensors = captures
        structured_inputs = tf.nest.pack_sequence_as(args[0], graph.inputs[:n], expand_composites=True)
        # Raw feature -> its component placeholders (a sparse feature has indices, values and dense_shape).
        self.inputs: dict[str, list[tf.Tensor]] = {
            name: tf.nest.flatten(value, expand_composites=True) for name, value in structured_inputs.items()}
        self.outputs: dict[str, object] = tf.nest.pack_sequence_as(
            function.structured_outputs, graph.outputs, expand_composites=True)
        self._graph_def = graph.as_graph_def()
        self._nodes = {node.name: node for node in self._graph_def.node}
        feature_of = {t.op.name: name for name, tensors in self.inputs.items() for t in tensors}
        capture_nodes = {t.op.name for t in captures}
        self._sources = self._data_sources(feature_of, capture_nodes)
        self._callers = self._callers_of_functions()

    def _data_sources(self, feature_of: Mapping[str, str], capture_nodes: set[str]) -> dict[str, frozenset[str]]:
        """Per node, the raw features it depends on through data edges (iterative: graphs can be deep)."""
        sources: dict[str, frozenset[str]] = {}
        for root in self._nodes:
            stack, open_nodes = [(root, False)], set()
            while stack:
                name, expanded = stack.pop()
                if name in sources:
                    continue
                node = self._nodes.get(name)
                if node is None:
                    raise _Unreadable(f"node {name!r} is referenced but not in the graph")
                inputs = [_node_name(i) for i in node.input if not i.startswith("^")]
                if not expanded:
                    if name in open_nodes:  # a TF1 while loop: not a function graph
                        raise _Unreadable(f"the graph has a cycle through {name!r}")
                    open_nodes.add(name)
                    stack.append((name, True))
                    stack.extend((i, False) for i in inputs if i not in sources)
                    continue
                if node.op == "Placeholder" and name not in feature_of and name not in capture_nodes:
                    raise _Unreadable(f"placeholder {name!r} is neither a raw feature nor a capture")
                found = {feature_of[name]} if name in feature_of else set()
                for i in inputs:
                    found |= sources[i]
                sources[name] = frozenset(found)
        return sources

    def _callers_of_functions(self) -> dict[str, set[str]]:
        """Library function -> the top-level nodes that run it, directly or through other functions: an op that
        fails inside ``tf.map_fn``'s while body is reported with the body's function name."""
        library = {f.signature.name: f for f in self._graph_def.library.function}
        callers: dict[str, set[str]] = {}
        for node in self._graph_def.node:
            stack, seen = _called_functions(node), set()
            while stack:
                name = stack.pop()
                if name in seen or name not in library:
                    continue
                seen.add(name)
                callers.setdefault(name, set()).add(node.name)
                for inner in library[name].node_def:
                    stack.extend(_called_functions(inner))
        return callers

    def output_tensors(self, name: str) -> list[tf.Tensor]:
        return tf.nest.flatten(self.outputs[name], expand_composites=True)

    def required_features(self, names: Iterable[str]) -> dict[str, list[str]]:
        """Per transformed output, the raw features it depends on (sorted)."""
        return {name: sorted(set().union(*(self._sources[t.op.name] for t in self.output_tensors(name))))
                for name in names}

    def features_of_failure(self, message: str) -> list[str]:
        """The raw features the op named in a TF error message depends on; empty when the op cannot be placed.

        The op is found by name in the graph, else through the library function it ran in (the top-level ``While``
        or call that runs it), else as the nearest enclosing name scope that is a node (``map/while`` for
        ``map/while/DecodePng``).
        """
        nodes = [(a or b).removeprefix(f"{_IMPORT_SCOPE}/") for a, b in _FAILED_NODE.findall(message)]
        functions = _FAILED_FUNCTION.findall(message)
        found: set[str] = set()
        for name in nodes:
            if name in self._sources:
                found |= self._sources[name]
        for function in functions:
            for caller in self._callers.get(function, ()):
                found |= self._sources[caller]
        if not found:
            for name in nodes:
                parts = name.split("/")
                for end in range(len(parts) - 1, 0, -1):
                    scope = "/".join(parts[:end])
                    if scope in self._sources:
                        found |= self._sources[scope]
                        break
        return sorted(found)

    def pruned(self, names: Sequence[str], features: Sequence[str]) -> Callable[..., list[tf.Tensor]]:
        """A function from the features' component tensors (in ``self.inputs`` order, features in the given order)
        to the flat output tensors of ``names``, running only the ops those outputs need plus the control
        dependencies (asserts) computable from ``features``."""
        fed = frozenset(features)
        kept: dict[str, node_def_pb2.NodeDef] = {}
        stack = [t.op.name for name in names for t in self.output_tensors(name)]
        stack += [t.op.name for feature in features for t in self.inputs[feature]]
        stack += [t.op.name for t in self._capture_tensors]
        while stack:
            name = stack.pop()
            if name in kept:
                continue
            node = node_def_pb2.NodeDef()
            node.CopyFrom(self._nodes[name])
            del node.input[:]
            for source in self._nodes[name].input:
                dependency = _node_name(source)
                if source.startswith("^") and not self._sources[dependency] <= fed:
                    continue  # an assert or lookup on a feature that is not fed: it must not run on nothing
                node.input.append(source)
                stack.append(dependency)
            kept[name] = node
        for node in kept.values():  # a colocation with a pruned node would fail the import
            if "_class" in node.attr:
                locations = [loc for loc in node.attr["_class"].list.s if loc[len(b"loc:@"):].decode() in kept]
                del node.attr["_class"].list.s[:]
                node.attr["_class"].list.s.extend(locations)
                if not locations:
                    del node.attr["_class"]
        graph_def = graph_pb2.GraphDef()
        graph_def.versions.CopyFrom(self._graph_def.versions)
        graph_def.library.CopyFrom(self._graph_def.library)
        graph_def.node.extend(kept[node.name] for node in self._graph_def.node if node.name in kept)
        feeds = [t for feature in features for t in self.inputs[feature]] + self._capture_tensors
        fetches = [t.name for name in names for t in self.output_tensors(name)]

        def import_pruned(*args: tf.Tensor) -> list[tf.Tensor]:
            input_map = {t.name: a for t, a in zip(feeds, args, strict=True)}
            return tf.graph_util.import_graph_def(graph_def, input_map=input_map, return_elements=fetches,
                                                  name=_IMPORT_SCOPE)

        wrapped = tf.compat.v1.wrap_function(import_pruned, [tf.TensorSpec(t.shape, t.dtype) for t in feeds])
        captured = self._captured
        return lambda *components: wrapped(*components, *captured)


def _first_line(message: str) -> str:
    """What TF says is wrong (the assert's message, "Input is empty."), without the lines locating the op."""
    lines = [line.strip() for line in message.splitlines() if not _LOCATION_LINE.match(line)]
    text = lines[0] if lines else message.strip().splitlines()[0] if message.strip() else "(no message)"
    return text if len(text) <= 300 else text[:297] + "..."


class TransformedInputs:
    """Serialized raw tf.Examples -> the transformed inputs of a dense signature, through a TFT transform graph.

    Build it once (per Beam worker: in ``DoFn.setup``); it loads the transform graph and prunes it to the signature's
    inputs once.

    Args:
      transform_graph_uri: the uri of Transform's ``transform_graph`` artifact (``transform_fn/`` and
        ``transformed_metadata/`` below it).
      specs: the model's dense signature inputs (``dense_signature_specs``); their names are transformed feature names.
      source: where the examples come from (artifact and split), named in errors.

    Attributes:
      raw_feature_names: the raw features parsed from each example (sorted). ``None`` until the first batch when
        the graph's structure cannot be read (then they are learnt from that batch's records).

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
        self._output, self._raw_spec, transformed_spec = _load(transform_graph_uri)
        produced = set(transformed_spec)
        self._names = [spec.name for spec in self._specs]
        missing = sorted(set(self._names) - produced)
        if missing:
            raise ValueError(
                f"transform graph {transform_graph_uri} does not produce the signature inputs {missing}. "
                f"Signature inputs: {sorted(self._names)}; transformed features: {sorted(produced)}. Export the "
                "dense signature over the transformed feature names (the keys preprocessing_fn returns), or wire the "
                "transform graph the model was trained with."
            )
        self.raw_feature_names: list[str] | None = None
        self._structure: _TransformStructure | None = None
        self._apply: Callable[[dict[str, object]], dict[str, object]] | None = None
        self._parse: Callable[[tf.Tensor], dict[str, object]] | None = None
        try:
            self._structure = _TransformStructure(self._load_saved_model())
        except _Unreadable as e:
            logging.info("transform graph %s: %s; learning its raw features from the first records", self.uri, e)
        if self._structure is not None:
            self._use_structure(self._structure)

    def _load_saved_model(self) -> object:
        for module in _ADDON_OP_MODULES:  # their ops must be registered before a graph using them loads
            try:
                importlib.import_module(module)
            except (ImportError, tf.errors.NotFoundError):
                pass
        try:
            return tf.saved_model.load(self._output.transform_savedmodel_dir)
        except Exception as e:  # e.g. an op from a library that is not installed: TFT's own layer says which
            raise _Unreadable(f"tf.saved_model.load failed ({type(e).__name__}: {e})") from e

    def _use_structure(self, structure: _TransformStructure) -> None:
        """Parse exactly the raw features the signature inputs depend on; run only the subgraph that needs them."""
        absent = sorted(set(self._names) - set(structure.outputs))
        if absent:  # the schema says they exist but the graph does not compute them
            raise ValueError(
                f"transform graph {self.uri} does not compute the signature inputs {absent} from the raw features "
                f"{sorted(structure.inputs)}; it computes {sorted(structure.outputs)}."
            )
        needs = structure.required_features(self._names)
        features = sorted(set().union(*needs.values()))
        unparseable = sorted(set(features) - set(self._raw_spec))
        if unparseable:
            raise ValueError(
                f"transform graph {self.uri}: its transform reads the raw features {unparseable}, which its raw "
                f"feature spec ({sorted(self._raw_spec)}) does not describe. Wire the transform_graph artifact of "
                "one Transform run (its transform_fn/ and metadata/ belong together)."
            )
        run = structure.pruned(self._names, features)
        names = self._names

        def apply(parsed: dict[str, object]) -> dict[str, object]:
            flat = run(*[t for feature in features for t in tf.nest.flatten(parsed[feature], expand_composites=True)])
            outputs, at = {}, 0
            for name in names:
                count = len(structure.output_tensors(name))
                outputs[name] = tf.nest.pack_sequence_as(structure.outputs[name], flat[at:at + count],
                                                         expand_composites=True)
                at += count
            return outputs

        self._set_features(features, apply)

    def _set_features(self, features: list[str], apply: Callable[[dict[str, object]], dict[str, object]]) -> None:
        self.raw_feature_names = features
        parse_spec = {name: self._raw_spec[name] for name in features}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def parse(serialized: tf.Tensor) -> dict[str, object]:
            return tf.io.parse_example(serialized, parse_spec)

        self._parse, self._apply = parse, apply

    def _learn_from_records(self, serialized: Sequence[bytes]) -> None:
        """The fallback: leave one raw feature out at a time on the first real records, through TFT's transform
        layer; a feature is required exactly when leaving it out drops a signature input (the layer drops every
        output that depends on a feature it was not given).

        Only features every one of these records carries take part, so unlabeled records work when no signature
        input needs the label. A TF1 export prunes the graph to the fed features; a TF2 one may fill a left-out
        feature with a default (TFT's behaviour), so a failure with a feature left out counts it as required.
        """
        layer = self._output.transform_features_layer()
        batch = tf.constant(list(serialized[:FALLBACK_SAMPLE_RECORDS]), dtype=tf.string)
        present = {}
        for name, spec in sorted(self._raw_spec.items()):
            try:
                present[name] = tf.io.parse_example(batch, {name: spec})[name]
            except tf.errors.InvalidArgumentError:
                continue
        try:
            produced = set(layer(present))
        except tf.errors.OpError as e:
            raise self._transform_error(e, list(serialized[:FALLBACK_SAMPLE_RECORDS]), sorted(present)) from e
        absent = sorted(set(self._names) - produced)
        if absent:
            raise ValueError(
                f"{self.source}: transform graph {self.uri} does not compute the signature inputs {absent} from the "
                f"raw features these examples carry ({sorted(present)}); it computes {sorted(produced)}. Feed raw "
                "examples as Transform saw them (ExampleGen's output, not Transform's transformed_examples)."
            )
        required = []
        for feature in sorted(present):
            try:
                computed = set(layer({k: v for k, v in present.items() if k != feature}))
            except tf.errors.OpError:
                computed = set()
            if not set(self._names) <= computed:
                required.append(feature)
        self._set_features(required, lambda parsed: layer(parsed))
        logging.info("transform graph %s: raw features %s learnt from %d records of %s", self.uri, required,
                     len(batch), self.source)

    @property
    def input_specs(self) -> list[InputSpec]:
        """The signature inputs this object produces."""
        return list(self._specs)

    def _transform(self, serialized: Sequence[bytes]) -> dict[str, object]:
        """Parse, then transform; each step's errors are told apart (a record's shape vs. its values)."""
        batch = tf.constant(list(serialized), dtype=tf.string)
        try:
            parsed = self._parse(batch)
        except tf.errors.InvalidArgumentError as e:
            found = _MISSING_FEATURE.search(e.message)
            what = (f"the examples lack the raw feature {found.group(1)!r}" if found
                    else "the examples do not match the transform's raw feature spec")
            raise ValueError(
                f"{self.source}: {what}, which transform graph {self.uri} needs to compute the signature inputs "
                f"(raw features needed: {self.raw_feature_names}; parser: {e.message.splitlines()[0]}). Feed raw "
                "examples as Transform saw them (ExampleGen's output, not Transform's transformed_examples)."
            ) from e
        return self._apply(parsed)

    def _transform_error(self, error: tf.errors.OpError, serialized: Sequence[bytes],
                         features: Sequence[str]) -> ValueError:
        """A clear refusal for records the transform rejects: the source, the first failing record, the raw
        feature(s) the failing op reads, what TF said, and the fix."""
        where = f"a batch of {len(serialized)} records"
        # Record by record (real records only), to name the one that fails; not while still learning the features.
        searchable = self._apply is not None and len(serialized) > 1
        for i, record in enumerate(serialized[:MAX_RECORDS_SEARCHED] if searchable else ()):
            try:
                self._apply(self._parse(tf.constant([record], dtype=tf.string)))
            except tf.errors.OpError as e:
                error, where = e, f"record {i} of a batch of {len(serialized)}"
                break
        involved = self._structure.features_of_failure(error.message) if self._structure else []
        feature_text = (f"the raw feature{'s' if len(involved) > 1 else ''} {', '.join(map(repr, involved))}"
                        if involved else f"one of the raw features it reads ({', '.join(map(repr, features))})")
        return ValueError(
            f"{self.source}: transform graph {self.uri} fails on {where}, in the transform of {feature_text}: "
            f"{_first_line(error.message)} The preprocessing_fn rejects this value (a corrupt or empty encoded "
            "image, a failed tf.debugging assert), so the model cannot be fed the record. Repair or drop the "
            "record where the data enters (ExampleGen's input), or make preprocessing_fn handle such values."
        )

    def __call__(self, serialized: Sequence[bytes]) -> dict[str, np.ndarray]:
        """Transforms one batch of serialized raw tf.Examples into one ``[n, *dims]`` array per signature input.

        Raises:
          ValueError: no examples; the examples lack a raw feature the transform needs, or hold it with the wrong
            type or number of values; the transform rejects a record's value (names the record and raw feature);
            a transformed input is sparse or does not fit the input's shape.
        """
        if len(serialized) == 0:
            raise ValueError(f"{self.source}: no examples to transform; it must hold at least one tf.Example.")
        if self._apply is None:
            self._learn_from_records(serialized)
        try:
            outputs = self._transform(serialized)
        except tf.errors.OpError as e:
            raise self._transform_error(e, serialized, self.raw_feature_names or []) from e
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
