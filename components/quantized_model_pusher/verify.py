"""What the pusher checks on the bytes it is about to push: a loadable TFLite model, the one its blessing is about.

The Quantizer's ``sha256`` property catches a file changed after quantization, but a model imported with an
Importer (or written by another converter) has none; loading the bytes with the LiteRT interpreter catches a
truncated or corrupt file whatever produced it. The blessing's ``evaluated_sha256`` ties the verdict to these bytes;
a blessing without it (the stock Evaluator's) must name this artifact in ``current_model_id``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from tfx import types

from quantgate.components.quantized_model_pusher import manifest as manifest_lib
from quantgate.components.shared import properties
from quantgate.components.shared.model_runners import TFLITE_SIGNATURE, TFLiteRunner

_INT64_MAX = 1 << 63


def kubeflow_artifact_id(name: str) -> int:
    """The int id TFX's Kubeflow v2 entrypoint gives the artifact named ``name`` (``_get_hashed_id`` there).

    Repeated here because importing that module pulls in the Vertex AI clients; tests check it still matches.
    """
    return int(hashlib.sha256(name.encode("utf-8")).hexdigest(), 16) % _INT64_MAX


def _tensor_io(name: str, details: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = details["quantization"]
    quantized = bool(scale)  # TFLite marks a tensor without quantization parameters with scale 0
    return {
        "name": name,
        "dtype": np.dtype(details["dtype"]).name,
        "shape": [None if s < 0 else int(s) for s in details["shape_signature"]],
        "scale": float(scale) if quantized else None,
        "zero_point": int(zero_point) if quantized else None,
    }


def tflite_io(model: types.Artifact, path: str, data: bytes) -> dict[str, list[dict[str, Any]]]:
    """The ``serving_default`` inputs and outputs of the TFLite ``data`` (read from ``path`` of input ``model``).

    Raises ``ValueError`` when the LiteRT interpreter cannot load the bytes, allocate the tensors, or find the
    signature: a truncated or corrupt file, or not a TFLite model.
    """
    where = f"QuantizedModelPusher: input 'model' (artifact {model.id}, {model.uri}): {path}"
    fix = "re-run the Quantizer, or re-import a valid TFLite model"
    if not data:
        raise ValueError(f"{where} is empty (0 bytes); {fix}")
    try:
        runner = TFLiteRunner(path, content=data)  # the evaluator's loader: the same checks on the same bytes
    except ValueError as e:
        raise ValueError(f"{where} ({len(data)} bytes) is not a loadable TFLite model with a {TFLITE_SIGNATURE!r} "
                         f"signature (LiteRT: {e.__cause__ or e}); the file is truncated or corrupt, or not the "
                         f"Quantizer's output; {fix}") from e
    return {
        "inputs": [_tensor_io(n, d) for n, d in sorted(runner.input_details.items())],
        "outputs": [_tensor_io(n, d) for n, d in sorted(runner.output_details.items())],
    }


def _is_model(current_model_id: Any, model: types.Artifact) -> bool:
    """Whether a blessing's ``current_model_id`` names ``model``, in any form a runner hands it over."""
    if isinstance(current_model_id, str):
        # Kubeflow v2 rewrites the stock Evaluator's id into the model's artifact name.
        return (int(current_model_id) if current_model_id.isdigit()
                else kubeflow_artifact_id(current_model_id)) == model.id
    if isinstance(current_model_id, float):
        # On Kubeflow every property arrives as a JSON number: a 63-bit id keeps only a double's precision.
        return current_model_id == float(model.id)
    return int(current_model_id) == model.id


def check_blessing_is_about(model: types.Artifact, sha256: str, blessing_key: str, blessing: types.Artifact) -> None:
    """Refuses a blessing computed on other bytes (``evaluated_sha256``) or, lacking that, another artifact.

    The sha256 of the bytes the QuantizationEvaluator scored decides when the blessing has it: it holds on every
    orchestrator, while ids are re-assigned when artifacts cross one (a Kubeflow container sees other ids than the
    local MLMD). Without it (a stock Evaluator's blessing), ``current_model_id`` must name the model.
    """
    named = f"input '{blessing_key}' (artifact {blessing.id})"
    fix = "wire the blessing the QuantizationEvaluator computed on this model, or re-run it on input 'model'"
    evaluated = manifest_lib.property_value(blessing, properties.EVALUATED_SHA256)
    if evaluated is not None:
        if evaluated != sha256:
            raise ValueError(f"QuantizedModelPusher: {named} was computed on model.tflite bytes with sha256 "
                             f"{evaluated} ({properties.EVALUATED_SHA256}), but input 'model' (artifact {model.id}, "
                             f"{model.uri}) holds bytes with sha256 {sha256}; {fix}")
        return
    current_model_id = manifest_lib.property_value(blessing, properties.CURRENT_MODEL_ID)
    if current_model_id is not None and not _is_model(current_model_id, model):
        raise ValueError(f"QuantizedModelPusher: {named} is about model {current_model_id} "
                         f"({properties.CURRENT_MODEL_ID}), not input 'model' (artifact {model.id}); {fix}")


def select_candidate(models: list[types.Artifact], blessing_key: str, blessing: types.Artifact) -> types.Artifact:
    """The model to push: the only one, or among several candidates the one the blessing's ``current_model_id``
    names (the QuantizationEvaluator's ``selection``), else the one whose ``sha256`` is the blessing's
    ``evaluated_sha256`` (ids differ between orchestrators; the bytes do not).

    Raises ``ValueError`` naming every candidate's id when the blessing names none of them, or none at all.
    """
    if len(models) == 1:
        return models[0]
    ids = ", ".join(str(m.id) for m in models)
    named = f"input '{blessing_key}' (artifact {blessing.id})"
    current_model_id = manifest_lib.property_value(blessing, properties.CURRENT_MODEL_ID)
    if current_model_id is None:
        raise ValueError(f"QuantizedModelPusher: input 'model' holds {len(models)} candidates (artifacts {ids}), but "
                         f"{named} has no {properties.CURRENT_MODEL_ID} to say which was chosen; wire the blessing "
                         "of the QuantizationEvaluator that scored these candidates")
    chosen = [m for m in models if _is_model(current_model_id, m)]
    if not chosen:
        # Artifact ids are the orchestrator's (Kubeflow v2 derives them from artifact names): the bytes the blessing
        # was computed on name the candidate wherever it ran.
        evaluated = manifest_lib.property_value(blessing, properties.EVALUATED_SHA256)
        chosen = [m for m in models if evaluated is not None
                  and manifest_lib.property_value(m, properties.SHA256) == evaluated]
    if len(chosen) != 1:
        raise ValueError(f"QuantizedModelPusher: {named} chose model {current_model_id} "
                         f"({properties.CURRENT_MODEL_ID}), which is not among the {len(models)} candidates of input "
                         f"'model' (artifacts {ids}), nor are the bytes it was computed on "
                         f"({properties.EVALUATED_SHA256}) exactly one candidate's; wire the same candidates into "
                         "the QuantizationEvaluator and the pusher")
    return chosen[0]


def check_transform_graph(model: types.Artifact, transform_graph: types.Artifact | None) -> None:
    """Refuses a ``transform_graph`` other than the one the Quantizer calibrated the model through, or one wired for
    a model quantized over raw features: its vocabularies would map strings to ids the model was not trained on, and
    the manifest would tell apps to transform inputs the model takes raw."""
    if transform_graph is None:
        return
    recorded = manifest_lib.property_value(model, properties.TRANSFORM_GRAPH_URI)
    if recorded == transform_graph.uri:
        return
    wired = f"input '{properties.TRANSFORM_GRAPH_KEY}' (artifact {transform_graph.id}, {transform_graph.uri})"
    if recorded is None:
        raise ValueError(
            f"QuantizedModelPusher: {wired} is wired, but input 'model' (artifact {model.id}) was quantized over raw "
            f"features (it has no {properties.TRANSFORM_GRAPH_URI} property); wire the same Transform output into "
            "the Quantizer, or drop transform_graph from the pusher")
    raise ValueError(
        f"QuantizedModelPusher: {wired} is not the transform graph input 'model' (artifact {model.id}) was quantized "
        f"through ({recorded}, its {properties.TRANSFORM_GRAPH_URI} property); wire the same Transform output into "
        "the Quantizer and the pusher")
