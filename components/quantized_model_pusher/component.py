"""``QuantizedModelPusher``: the stock Pusher's blessing gate, plus a float blessing, an atomic publish and a manifest."""

from __future__ import annotations

from collections.abc import Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts

from quantgate.components.quantized_model_pusher.executor import Executor
from quantgate.components.quantized_model_pusher.spec import QuantizedModelPusherSpec
from quantgate.components.shared import properties


class QuantizedModelPusher(base_component.BaseComponent):
    """Pushes ``Format-Serving/model.tflite`` + ``manifest.json`` to ``<base_directory>/<version>/``, atomically.

    Only when ``model_blessing`` (the QuantizationEvaluator's) and, when wired, ``float_blessing`` (the stock
    Evaluator's) say ``blessed=1``; otherwise nothing is written and the ``PushedModel`` has ``pushed=0`` and a
    ``reason``. Before anything is written, the bytes must load in the LiteRT interpreter with a
    ``serving_default`` signature and match the blessing's ``evaluated_sha256`` and ``current_model_id`` when it
    has them; otherwise the execution fails with an error saying what to fix. Inputs and the ``push_destination``
    parameter: see ``__init__``.

    Output ``pushed_model`` (standard ``PushedModel``):
      files: a copy of the pushed ``model.tflite``, ``manifest.json``, for a classifier ``labels.txt`` and, with a
        ``transform_graph``, ``vocabularies/<name>`` (as the stock Pusher archives what it pushed); the push itself
        is ``<base_directory>/<version>/{model.tflite, manifest.json, labels.txt, vocabularies/}``;
      custom properties: ``pushed`` (1/0), ``pushed_destination``, ``pushed_version``, ``sha256``, ``reason``.
    """

    SPEC_CLASS = QuantizedModelPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: types.BaseChannel | Sequence[types.BaseChannel],
        model_blessing: types.BaseChannel,
        push_destination: pusher_pb2.PushDestination,
        float_blessing: types.BaseChannel | None = None,
        float_model: types.BaseChannel | None = None,
        representative_dataset: types.BaseChannel | None = None,
        evaluation: types.BaseChannel | None = None,
        transform_graph: types.BaseChannel | None = None,
        schema: types.BaseChannel | None = None,
    ) -> None:
        """Args:
          model: the Quantizer's ``quantized_model`` (a ``Model`` holding ``Format-Serving/model.tflite``), or a
            channel of several such candidates, or a list of up to ``MAX_CANDIDATES`` channels (input keys ``model``,
            ``model_1`` ...: the QuantizationEvaluator's candidates): the one the blessing's ``current_model_id``
            names is pushed.
          model_blessing: the QuantizationEvaluator's ``blessing``.
          push_destination: a ``PushDestination`` with ``filesystem.base_directory`` (versioning AUTO or
            UNIX_TIMESTAMP).
          float_blessing: the stock Evaluator's ``blessing`` of the float model; when wired it must be blessed too.
          float_model: the Trainer's model, recorded in the manifest.
          representative_dataset: the calibration set the Quantizer used, recorded in the manifest.
          evaluation: the QuantizationEvaluator's ``evaluation``, whose float and quantized metric values go into
            the manifest.
          transform_graph: Transform's ``transform_graph`` (the one the Quantizer calibrated through): its
            vocabulary files ship as ``vocabularies/<name>`` beside ``model.tflite``, listed in the manifest; the
            one named after the label names the classes in ``labels.txt``.
          schema: SchemaGen's ``schema``: the label feature's string domain (or int domain) names the classes in
            ``labels.txt`` when no label vocabulary does.
        """
        channels = [model] if isinstance(model, types.BaseChannel) else list(model)
        if not 1 <= len(channels) <= properties.MAX_CANDIDATES:
            raise ValueError(f"QuantizedModelPusher: model takes 1 to {properties.MAX_CANDIDATES} channels, got "
                             f"{len(channels)}")
        spec = QuantizedModelPusherSpec(
            **{properties.candidate_model_key(i): channel for i, channel in enumerate(channels)},
            model_blessing=model_blessing,
            float_blessing=float_blessing,
            float_model=float_model,
            representative_dataset=representative_dataset,
            evaluation=evaluation,
            transform_graph=transform_graph,
            schema=schema,
            push_destination=push_destination,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
        )
        super().__init__(spec=spec)
