"""The QuantizedModelPusher's executor: TFX's Pusher executor with a float blessing, an atomic publish and a manifest.

``push`` is the whole run on artifacts and one ``config.QuantizedModelPusherConfig``; ``Executor.Do`` only unpacks
TFX's dicts and marks the ``PushedModel`` from the outcome as the stock Pusher does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from quantgate.components.quantized_model_pusher import bundle, publish, verify
from quantgate.components.quantized_model_pusher import manifest as manifest_lib
from quantgate.components.quantized_model_pusher.config import (
    QuantizedModelPusherConfig,
    base_directory,  # noqa: F401 (re-exported: it was defined here)
)
from quantgate.components.quantized_model_pusher.spec import (
    BLESSING_KEYS,
    CANDIDATE_KEYS,
    EVALUATION_KEY,
    FLOAT_BLESSING_KEY,
    FLOAT_MODEL_KEY,
    MODEL_BLESSING_KEY,
    PUSH_DESTINATION_KEY,  # noqa: F401 (re-exported; QuantizedModelPusherConfig reads it)
    PUSHED_MODEL_KEY,
    REPRESENTATIVE_DATASET_KEY,
    SCHEMA_KEY,
    TRANSFORM_GRAPH_KEY,
)
from quantgate.components.shared import properties
from quantgate.components.shared.artifact_inputs import optional_single
from quantgate.components.shared.digests import bytes_sha256
from quantgate.components.shared.transform_inputs import vocabulary_files

log = logging.getLogger(__name__)


def read_model(model: types.Artifact, serving_path: str) -> tuple[bytes, dict[str, Any]]:
    """The TFLite bytes of the quantized ``model`` and their signature's inputs and outputs.

    The bytes are checked against the ``sha256`` property when the artifact has one, and loaded with the LiteRT
    interpreter in any case (an imported model has no ``sha256``): the very bytes that will be published.
    """
    path = serving_path.rstrip("/") + "/" + publish.MODEL_FILE
    if not fileio.exists(path):
        raise ValueError(f"QuantizedModelPusher: input 'model' (artifact {model.id}, {model.uri}) has no "
                         f"Format-Serving/{publish.MODEL_FILE}; wire the Quantizer's 'quantized_model' output, "
                         "not the Trainer's model")
    with fileio.open(path, "rb") as f:
        data = f.read()
    recorded = manifest_lib.property_value(model, properties.SHA256)
    if recorded is not None and recorded != bytes_sha256(data):
        raise ValueError(f"QuantizedModelPusher: {path} does not match the sha256 custom property of input 'model' "
                         f"(artifact {model.id}): the file changed after the Quantizer wrote it; re-run the Quantizer")
    return data, verify.tflite_io(model, path, data)


def read_vocabularies(transform_graph: types.Artifact | None) -> dict[str, bytes]:
    """The transform graph's vocabulary files, name -> bytes (``transform_inputs.vocabulary_files``); none without one."""
    if transform_graph is None:
        return {}
    vocabularies = {}
    for name, path in vocabulary_files(transform_graph.uri).items():
        with fileio.open(path, "rb") as f:
            vocabularies[name] = f.read()
    return vocabularies


def evaluation_facts(evaluation: types.Artifact | None, representative_dataset: types.Artifact | None,
                     blessing: types.Artifact) -> tuple[str | None, str | None]:
    """The model's task and label key: from the evaluation's ``metrics.json`` (``task``, ``label_key``) when wired
    and present; the task else from the blessing's ``metric`` (``bundle.metric_task``), the label key else from the
    representative dataset's ``label_key`` property.

    The blessing is always wired and names its metric, so a classifier ships ``labels.txt`` without the evaluation.
    """
    task = label_key = None
    path = evaluation.uri.rstrip("/") + "/" + properties.METRICS_FILENAME if evaluation is not None else None
    if path is not None and fileio.exists(path):
        with fileio.open(path, "r") as f:
            metrics = json.load(f)
        task, label_key = metrics.get("task"), metrics.get("label_key")
    task = task or bundle.metric_task(manifest_lib.property_value(blessing, properties.METRIC))
    return task, label_key or manifest_lib.property_value(representative_dataset, properties.LABEL_KEY)


def read_schema(schema: types.Artifact | None) -> schema_pb2.Schema | None:
    """SchemaGen's schema (``schema.pbtxt`` in the artifact's folder); ``None`` when not wired."""
    if schema is None:
        return None
    return io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))


@dataclass(frozen=True)
class PushOutcome:
    """What ``push`` did: the reason, and for a pushed model the published version (folder, name) and its sha256."""

    reason: str
    destination: str | None = None  # None: refused, nothing written
    version: str | None = None
    sha256: str | None = None

    @property
    def pushed(self) -> bool:
        return self.destination is not None


def push(*, candidates: list[types.Artifact], blessings: dict[str, types.Artifact], pushed_model: types.Artifact,
         config: QuantizedModelPusherConfig, float_model: types.Artifact | None = None,
         representative_dataset: types.Artifact | None = None, evaluation: types.Artifact | None = None,
         transform_graph: types.Artifact | None = None, schema: types.Artifact | None = None,
         pipeline_run_id: str | None = None) -> PushOutcome:
    """The whole push: refuse unless every wired blessing (by input key, ``BLESSING_KEYS``) says ``blessed == 1``;
    else pick the blessed candidate, check its bytes, build the manifest and the bundle, publish them atomically
    under ``config.base_directory`` and archive what was pushed in ``pushed_model``'s folder (as the stock Pusher
    does). The caller marks ``pushed_model`` from the outcome (``Executor._record``)."""
    reasons = manifest_lib.refusals(blessings)
    if reasons:
        log.info("not pushing: %s", "; ".join(reasons))
        return PushOutcome(reason="; ".join(reasons))

    model = verify.select_candidate(candidates, MODEL_BLESSING_KEY, blessings[MODEL_BLESSING_KEY])
    model_bytes, model_io = read_model(
        model, path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model)))
    sha256 = bytes_sha256(model_bytes)
    verify.check_blessing_is_about(model, sha256, MODEL_BLESSING_KEY, blessings[MODEL_BLESSING_KEY])
    verify.check_transform_graph(model, transform_graph)
    vocabularies = read_vocabularies(transform_graph)
    if transform_graph is None and manifest_lib.property_value(model, properties.TRANSFORM_GRAPH_URI):
        log.warning("input 'model' (artifact %s) was quantized through transform graph %s, but input '%s' is not "
                    "wired: its vocabularies were not shipped (wire transform_graph to ship them)", model.id,
                    manifest_lib.property_value(model, properties.TRANSFORM_GRAPH_URI), TRANSFORM_GRAPH_KEY)
    task, label_key = evaluation_facts(evaluation, representative_dataset, blessings[MODEL_BLESSING_KEY])
    labels = bundle.labels_file(model_io, task, label_key, vocabularies, read_schema(schema))
    model_io = bundle.describe_io(
        model_io, label_key=label_key, labels_file=properties.LABELS_FILENAME if labels else None,
        transformed=manifest_lib.property_value(model, properties.TRANSFORM_GRAPH_URI) is not None)
    manifest = manifest_lib.build_manifest(
        model=model,
        blessing=blessings[MODEL_BLESSING_KEY],
        float_blessing=blessings.get(FLOAT_BLESSING_KEY),
        float_model=float_model,
        representative_dataset=representative_dataset,
        evaluation=evaluation,
        sha256=sha256,
        size_bytes=len(model_bytes),
        io=model_io,
        pipeline_run_id=pipeline_run_id,
        transform_graph=transform_graph,
        vocabularies=vocabularies,
        labels=labels[1] if labels else None,
    )
    extra_files = {manifest_lib.vocabulary_file(name): data for name, data in vocabularies.items()}
    if labels:
        extra_files[properties.LABELS_FILENAME] = labels[0]
    published = publish.publish(config.base_directory, model_bytes, manifest,
                                manifest_lib.push_key(model, blessings, sha256), extra_files=extra_files)

    # Like the stock Pusher, the PushedModel artifact archives what was pushed.
    archive = pushed_model.uri.rstrip("/")
    for name in (publish.MODEL_FILE, publish.MANIFEST_FILE, *sorted(extra_files)):
        fileio.makedirs(f"{archive}/{name}".rsplit("/", 1)[0])
        fileio.copy(f"{published.path}/{name}", f"{archive}/{name}", overwrite=True)
    return PushOutcome(reason="pushed: " + ", ".join(f"{k} blessed" for k in blessings),
                       destination=published.path, version=published.version, sha256=sha256)


class Executor(pusher_executor.Executor):
    """Checks every wired blessing (the stock ``CheckBlessing`` rule, ``blessed == 1``), then publishes atomically
    (see ``push``)."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL_KEY])
        # A bad destination is a configuration error whatever the verdict: report it on every run.
        config = QuantizedModelPusherConfig.from_exec_properties(exec_properties)
        outcome = push(
            candidates=[m for key in CANDIDATE_KEYS for m in input_dict.get(key) or []],
            blessings={k: b for k in BLESSING_KEYS if (b := optional_single(input_dict, k)) is not None},
            pushed_model=pushed_model,
            config=config,
            float_model=optional_single(input_dict, FLOAT_MODEL_KEY),
            representative_dataset=optional_single(input_dict, REPRESENTATIVE_DATASET_KEY),
            evaluation=optional_single(input_dict, EVALUATION_KEY),
            transform_graph=optional_single(input_dict, TRANSFORM_GRAPH_KEY),
            schema=optional_single(input_dict, SCHEMA_KEY),
            pipeline_run_id=self._context.pipeline_run_id if self._context else None,
        )
        self._record(pushed_model, outcome)

    def _record(self, pushed_model: types.Artifact, outcome: PushOutcome) -> None:
        """The stock Pusher's ``pushed`` / ``pushed_destination`` / ``pushed_version``, then ``sha256`` and
        ``reason``."""
        if not outcome.pushed:
            self._MarkNotPushed(pushed_model)
        else:
            self._MarkPushed(pushed_model, pushed_destination=outcome.destination, pushed_version=outcome.version)
            pushed_model.set_string_custom_property(properties.SHA256, outcome.sha256)
        pushed_model.set_string_custom_property(properties.REASON, outcome.reason)
