"""Pure helpers of the pusher: the gate's verdict on the blessings, and the manifest that travels with a push.

They read TFX artifacts (ids, URIs, custom properties) and do no I/O, so tests build artifacts by hand.
"""

from __future__ import annotations

import math
from typing import Any

from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.util import model_utils

from quantgate.components.quantized_model_pusher import publish
from quantgate.components.shared import properties
from quantgate.components.shared.digests import bytes_sha256

MANIFEST_FORMAT = 1
# What an app must do before feeding model.tflite when the model was calibrated through a transform graph.
PREPROCESSING_NOTE = ("inputs are the transform graph's outputs; apply transform_graph to raw examples (or look ids "
                      f"up in {properties.VOCABULARY_DIRNAME}/) before feeding {properties.TFLITE_FILENAME}")


def property_value(artifact: types.Artifact | None, key: str) -> Any:
    """A custom property as a plain Python value; ``None`` when unset or NaN (the evaluator's "undefined")."""
    if artifact is None or not artifact.has_custom_property(key):
        return None
    # TFX's getter also decodes struct values: on Kubeflow / Vertex every upstream property arrives as one.
    plain = artifact.get_custom_property(key)
    return None if isinstance(plain, float) and math.isnan(plain) else plain


def refusal(input_key: str, blessing: types.Artifact) -> str | None:
    """Why ``blessing`` forbids the push, or ``None`` when it is blessed (``blessed`` == 1, as the stock Pusher)."""
    if model_utils.is_model_blessed(blessing):
        return None
    why = property_value(blessing, properties.REASON) or property_value(
        blessing, evaluator_constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY)
    if not blessing.has_custom_property(properties.BLESSED):
        why = why or "it has no 'blessed' custom property"
    why = why and why.removeprefix("not blessed: ")  # the QuantizationEvaluator's reasons start with the verdict
    return f"{input_key} (artifact {blessing.id}) is not blessed" + (f": {why}" if why else "")


def refusals(blessings: dict[str, types.Artifact]) -> list[str]:
    """Every reason the given blessings (by input key) refuse the push; empty when all are blessed."""
    return [r for key, blessing in blessings.items() if (r := refusal(key, blessing)) is not None]


def push_key(model: types.Artifact, blessings: dict[str, types.Artifact], sha256: str) -> dict[str, Any]:
    """What makes two pushes the same push: the same model bytes, model artifact and blessings."""
    return {"model_id": model.id, "sha256": sha256, **{f"{k}_id": b.id for k, b in sorted(blessings.items())}}


def _artifact_ref(artifact: types.Artifact | None) -> dict[str, Any] | None:
    return None if artifact is None else {"id": artifact.id, "uri": artifact.uri}


def vocabulary_file(name: str) -> str:
    """Where vocabulary ``name`` lands in a pushed version (relative to it)."""
    return f"{properties.VOCABULARY_DIRNAME}/{name}"


def transform_entries(model: types.Artifact, transform_graph: types.Artifact | None,
                      vocabularies: dict[str, bytes]) -> dict[str, Any]:
    """The manifest's ``transform_graph``, ``vocabularies`` and ``preprocessing``; empty for a model on raw features.

    Without a wired ``transform_graph``, the graph the Quantizer recorded on the model (``transform_graph_id`` /
    ``transform_graph_uri``) is named, and no vocabulary ships.
    """
    if transform_graph is not None:
        graph = _artifact_ref(transform_graph)
    elif property_value(model, properties.TRANSFORM_GRAPH_URI) is not None:
        graph = {"id": property_value(model, properties.TRANSFORM_GRAPH_ID),
                 "uri": property_value(model, properties.TRANSFORM_GRAPH_URI)}
    else:
        return {}
    return {
        "transform_graph": graph,
        "vocabularies": [{"name": name, "file": vocabulary_file(name), "sha256": bytes_sha256(data),
                          "size": len(data)} for name, data in sorted(vocabularies.items())],
        "preprocessing": PREPROCESSING_NOTE,
    }


def build_manifest(
    *,
    model: types.Artifact,
    blessing: types.Artifact,
    sha256: str,
    size_bytes: int,
    io: dict[str, list[dict[str, Any]]],
    float_blessing: types.Artifact | None = None,
    float_model: types.Artifact | None = None,
    representative_dataset: types.Artifact | None = None,
    evaluation: types.Artifact | None = None,
    pipeline_run_id: str | None = None,
    transform_graph: types.Artifact | None = None,
    vocabularies: dict[str, bytes] | None = None,
    labels: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``manifest.json`` of a push: what was pushed, how good it is, and where it came from in MLMD.

    The metric values come from ``evaluation`` (the QuantizationEvaluator's), falling back to the blessing; ``io``
    is the model's inputs and outputs as ``verify.tflite_io`` reads them: how an app quantizes its inputs.
    ``vocabularies`` (name -> bytes, from ``transform_graph``) are listed with their sha256 (``transform_entries``);
    ``labels`` (``bundle.labels_entry``) describes ``labels.txt``, ``None`` when the model is no classifier.
    """
    metric = property_value(blessing, properties.METRIC)

    def metric_value(key: str) -> Any:
        found = property_value(evaluation, key)
        return found if found is not None else property_value(blessing, key)

    return {
        "format": MANIFEST_FORMAT,
        "model_file": publish.MODEL_FILE,
        "sha256": sha256,
        "size_bytes": size_bytes,
        "float_size_bytes": property_value(model, properties.FLOAT_SIZE_BYTES),
        "quantization_mode": property_value(model, properties.QUANTIZATION_MODE),
        "io": io,
        "labels": labels,
        "float_tflite_size_bytes": property_value(model, properties.FLOAT_TFLITE_SIZE_BYTES),
        "metric": {
            "name": metric,
            "float": metric_value(properties.float_metric(metric)),
            "quantized": metric_value(properties.quantized_metric(metric)),
            "delta": property_value(blessing, properties.DELTA),
            "threshold": property_value(blessing, properties.THRESHOLD),
        },
        "reason": property_value(blessing, properties.REASON),
        "mlmd": {
            "quantized_model": _artifact_ref(model),
            "blessing": _artifact_ref(blessing),
            "float_blessing": _artifact_ref(float_blessing),
            "float_model": _artifact_ref(float_model),
            "representative_dataset": _artifact_ref(representative_dataset),
            "evaluation": _artifact_ref(evaluation),
            "pipeline_run_id": pipeline_run_id,
        },
        **transform_entries(model, transform_graph, vocabularies or {}),
    }
