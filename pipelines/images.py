"""An image classifier as a TFX user writes it, with quantgate after its Trainer.

Images are stored as TFX's image examples store them, encoded PNG bytes in a tf.Example (``pipelines/images_data.py``:
scikit-learn's digits at 32x32 RGB), and decoded by Transform (``models/images/image_transform.py``); the Trainer
(``models/images/image_trainer.py``) trains a MobileNet-class CNN on the decoded images and exports it as TFX's own
examples do, ``serving_default`` over serialized raw tf.Examples and nothing else. quantgate finds the function to
convert itself (``signature_name`` unset: the Keras model's restored call over ``image_xf``), and calibration, the
float baseline and the int8 comparison all decode the PNGs through the same transform graph:

    ImportExampleGen -> StatisticsGen -> SchemaGen -> Transform (decode PNG) -> Trainer (CNN)
      -> Evaluator (float, optional)
    ImportExampleGen -> RepresentativeDatasetGen (raw train) -> Quantizer (int8, through the transform graph)
      -> QuantizationEvaluator (raw eval, accuracy) -> QuantizedModelPusher (model.tflite + labels.txt)

Registered as ``pipelines.kinds`` ``images`` (``IMAGES_KIND``): ``quantgate run --pipeline images``.
"""

from __future__ import annotations

import os

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from quantgate.components import RepresentativeDatasetGen
from quantgate.pipelines.config import GateConfig, QuantizeConfig
from quantgate.pipelines.kinds import PIPELINES
from quantgate.pipelines.quantgate_stage import quantgate_stage

MODULE_DIR = os.path.join(os.path.dirname(__file__), "models", "images")
TRANSFORM_MODULE_FILE = os.path.join(MODULE_DIR, "image_transform.py")
TRAINER_MODULE_FILE = os.path.join(MODULE_DIR, "image_trainer.py")
LABEL_KEY = "label"  # raw: the QuantizationEvaluator reads it from the raw eval examples

# int8 with int8 I/O (the mode's default): the input is in [0, 1] after Transform, so its 256 levels cover it.
IMAGE_QUANTIZE = QuantizeConfig()
IMAGE_GATE = GateConfig(metric="accuracy", max_delta=0.02)

IMAGES_KIND = PIPELINES["images"]


def create_image_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    *,
    train_steps: int = 300,
    eval_steps: int = 10,
    architecture: str = "mobilenet_v2",
    trainer_config: dict | None = None,
    calibration_num_examples: int = 200,
    quantize: QuantizeConfig | None = None,
    gate: GateConfig | None = None,
    float_evaluator: bool = True,
    float_accuracy_threshold: float = 0.5,
    beam_pipeline_args: list[str] | None = None,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    enable_cache: bool = True,
    push_destination: str | None = None,
) -> tfx.dsl.Pipeline:
    """The image pipeline over the PNG tf.Examples in ``data_root`` (``images_data.write_image_examples``).

    Args:
      train_steps / eval_steps: the Trainer's (batches of 32).
      architecture: ``mobilenet_v2`` (MobileNetV2, alpha 0.35) or ``separable`` (a ~20k-parameter MobileNet-v1-style
        CNN that trains in seconds); ``trainer_config`` adds to the Trainer's ``custom_config`` (``learning_rate``,
        ``seed``).
      calibration_num_examples: RepresentativeDatasetGen's sample of the raw train split, stratified by label.
      quantize / gate: the Quantizer's and the QuantizationEvaluator's configuration (``pipelines/config.py``;
        defaults ``IMAGE_QUANTIZE``: int8, the signature derived, and ``IMAGE_GATE``: accuracy within 0.02;
        ``IMAGE_GATE.with_overrides({...})`` to change some).
      float_evaluator: wire TFX's Evaluator on the float model (sparse categorical accuracy at least
        ``float_accuracy_threshold``); its blessing then gates the push too.
      push_destination: where the pusher publishes (default ``<pipeline_root>/serving_model``).
    """
    quantize = quantize or IMAGE_QUANTIZE
    gate = gate or IMAGE_GATE
    example_gen = tfx.components.ImportExampleGen(input_base=data_root)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        module_file=TRANSFORM_MODULE_FILE)
    trainer = tfx.components.Trainer(
        module_file=TRAINER_MODULE_FILE,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=eval_steps),
        custom_config={"architecture": architecture, **(trainer_config or {})})
    components: list = [example_gen, statistics_gen, schema_gen, transform, trainer]
    float_blessing = None
    if float_evaluator:
        evaluator = tfx.components.Evaluator(
            examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
            eval_config=tfma.EvalConfig(
                model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key=LABEL_KEY)],
                slicing_specs=[tfma.SlicingSpec()],
                metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(
                    class_name="SparseCategoricalAccuracy",
                    threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                        lower_bound={"value": float_accuracy_threshold})))])]))
        components.append(evaluator)
        float_blessing = evaluator.outputs["blessing"]
    representative_dataset_gen = RepresentativeDatasetGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"], split="train",
        num_examples=calibration_num_examples, strategy="stratified", label_key=LABEL_KEY)
    quantizers, quantization_evaluator, pusher = quantgate_stage(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        # None (no float Evaluator): the pusher's float_blessing input is optional, the QuantizationEvaluator gates
        float_blessing=float_blessing,  # type: ignore[arg-type]
        representative_dataset=representative_dataset_gen.outputs["representative_dataset"],
        label_key=LABEL_KEY,
        schema=schema_gen.outputs["schema"],
        quantize=quantize,
        gate=gate,
        push_base_directory=push_destination or f"{pipeline_root.rstrip('/')}/serving_model",
        transform_graph=transform.outputs["transform_graph"],
    )
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[*components, representative_dataset_gen, *quantizers, quantization_evaluator, pusher],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
