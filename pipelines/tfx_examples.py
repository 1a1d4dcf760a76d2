"""TFX's own example pipelines, their module files unchanged, with quantgate after the Trainer.

The bar for quantgate is a model as an ordinary TFX Trainer exports it. These pipelines take the Transform and
Trainer code straight from the ``tfx`` wheel (``preprocessing_fn`` and ``run_fn`` of
``tfx.examples.imdb.imdb_utils_native_keras`` and ``tfx.examples.chicago_taxi_pipeline.taxi_utils_native_keras``),
so the model's only signature is ``serving_default`` over serialized tf.Examples, its output is what the example
makes it (the IMDB BiLSTM's logit, the taxi wide & deep model's sigmoid over ``CategoryEncoding`` one-hots), and
quantgate finds the function to convert itself (``signature_name`` unset):

    CsvExampleGen -> StatisticsGen -> SchemaGen -> Transform (the example's) -> Trainer (the example's)
      -> Evaluator (float, the example's own threshold)
    CsvExampleGen -> RepresentativeDatasetGen (raw train) -> Quantizer (through the transform graph)
      -> QuantizationEvaluator (raw eval) -> QuantizedModelPusher (the vocabularies beside model.tflite)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import resources

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from quantgate.components import RepresentativeDatasetGen
from quantgate.pipelines.config import GateConfig, QuantizeConfig
from quantgate.pipelines.data import write_if_changed
from quantgate.pipelines.quantgate_stage import quantgate_stage


@dataclass(frozen=True)
class TfxExample:
    """One of TFX's example pipelines: where its module and data are in the wheel, and its labels."""

    name: str
    module: str  # the example's module, whose preprocessing_fn and run_fn are used unchanged
    data_package: str
    data_resource: tuple[str, ...]
    raw_label_key: str
    label_key: str  # the QuantizationEvaluator's (a transformed feature when only the transform makes it)
    eval_hash_buckets: int  # eval share of the CSV, out of 3 buckets
    infer_feature_shape: bool
    float_eval_label_key: str
    float_eval_preprocessing: tuple[str, ...]
    float_accuracy_threshold: float
    quantize: QuantizeConfig
    gate: GateConfig


IMDB = TfxExample(
    name="imdb", module="tfx.examples.imdb.imdb_utils_native_keras", data_package="tfx.examples.imdb",
    data_resource=("data", "imdb_small_with_labels.txt"), raw_label_key="label", label_key="label",
    eval_hash_buckets=1, infer_feature_shape=True, float_eval_label_key="label", float_eval_preprocessing=(),
    # the example's own float gate: its model is trained on 100 reviews in the wheel
    float_accuracy_threshold=0.01,
    # Its model ends in Dense(1) with no activation, trained with from_logits=True. dynamic_range (int8 weights,
    # float activations) stands beside full int8: on this few-step model the int8 LSTM's output collapses to one
    # value (measured), and the gate then picks the candidate that passes.
    quantize=QuantizeConfig(candidate_modes=("dynamic_range",)),
    gate=GateConfig(metric="auc", max_delta=0.05, output_kind="logits"),
)
TAXI = TfxExample(
    name="taxi", module="tfx.examples.chicago_taxi_pipeline.taxi_utils_native_keras",
    data_package="tfx.examples.chicago_taxi_pipeline", data_resource=("data", "simple", "data.csv"),
    raw_label_key="tips", label_key="tips_xf", eval_hash_buckets=1, infer_feature_shape=False,
    float_eval_label_key="tips_xf", float_eval_preprocessing=("transform_features",),
    float_accuracy_threshold=0.6,
    quantize=QuantizeConfig(),
    gate=GateConfig(metric="auc", max_delta=0.02),
)
EXAMPLES = {example.name: example for example in (IMDB, TAXI)}


def write_example_csv(example: TfxExample, data_root: str) -> str:
    """Copies the example's CSV from the tfx wheel to ``<data_root>/<name>.csv`` (unless identical: TFX's cache
    fingerprints input files by size and mtime); returns its path."""
    source = resources.files(example.data_package).joinpath(*example.data_resource)
    content = source.read_bytes()
    path = os.path.join(data_root, f"{example.name}.csv")
    if write_if_changed(path, content):
        logging.info("wrote TFX's %s example data (%d bytes) to %s", example.name, len(content), path)
    return path


def write_imdb_csv(data_root: str) -> str:
    """``write_example_csv`` for TFX's IMDB sample (100 reviews)."""
    return write_example_csv(IMDB, data_root)


def write_taxi_example_csv(data_root: str) -> str:
    """``write_example_csv`` for TFX's Chicago taxi sample (15,000 trips)."""
    return write_example_csv(TAXI, data_root)


def create_tfx_example_pipeline(
    example: TfxExample | str,
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    *,
    train_steps: int = 100,
    eval_steps: int = 10,
    calibration_num_examples: int = 100,
    quantize: QuantizeConfig | None = None,
    gate: GateConfig | None = None,
    trainer_run_fn: str | None = None,
    transform_preprocessing_fn: str | None = None,
    beam_pipeline_args: list[str] | None = None,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    enable_cache: bool = True,
    push_destination: str | None = None,
) -> tfx.dsl.Pipeline:
    """The TFX example pipeline ``example`` (``'imdb'``, ``'taxi'`` or a ``TfxExample``) with quantgate after its
    Trainer. ``quantize`` / ``gate`` replace the example's (``IMDB.gate.with_overrides({"max_delta": 0.1})``);
    ``trainer_run_fn`` / ``transform_preprocessing_fn`` default to the example's own (the Kubeflow runner passes the
    same paths)."""
    example = EXAMPLES[example] if isinstance(example, str) else example
    quantize = quantize or example.quantize
    gate = gate or example.gate
    example_gen = tfx.components.CsvExampleGen(
        input_base=data_root,
        output_config=tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
            tfx.proto.SplitConfig.Split(name="train", hash_buckets=3 - example.eval_hash_buckets),
            tfx.proto.SplitConfig.Split(name="eval", hash_buckets=example.eval_hash_buckets)])))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=example.infer_feature_shape)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=transform_preprocessing_fn or f"{example.module}.preprocessing_fn")
    trainer = tfx.components.Trainer(
        run_fn=trainer_run_fn or f"{example.module}.run_fn",
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=eval_steps))
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        eval_config=tfma.EvalConfig(
            model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key=example.float_eval_label_key,
                                        preprocessing_function_names=list(example.float_eval_preprocessing))],
            slicing_specs=[tfma.SlicingSpec()],
            metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(
                class_name="BinaryAccuracy",
                threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                    lower_bound={"value": example.float_accuracy_threshold})))])]))
    representative_dataset_gen = RepresentativeDatasetGen(
        examples=example_gen.outputs["examples"], split="train", num_examples=calibration_num_examples)
    quantizers, quantization_evaluator, pusher = quantgate_stage(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        float_blessing=evaluator.outputs["blessing"],
        representative_dataset=representative_dataset_gen.outputs["representative_dataset"],
        label_key=example.label_key,
        schema=schema_gen.outputs["schema"],
        quantize=quantize,
        gate=gate,
        push_base_directory=push_destination or f"{pipeline_root.rstrip('/')}/serving_model",
        transform_graph=transform.outputs["transform_graph"],
    )
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, transform, trainer, evaluator,
                    representative_dataset_gen, *quantizers, quantization_evaluator, pusher],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )



def create_tfx_imdb_pipeline(pipeline_name: str, pipeline_root: str, data_root: str, **kwargs: object) -> tfx.dsl.Pipeline:
    """TFX's IMDB example (Transform vocabulary -> Embedding -> BiLSTM -> a logit) with quantgate after it."""
    return create_tfx_example_pipeline(IMDB, pipeline_name, pipeline_root, data_root, **kwargs)


def create_tfx_taxi_pipeline(pipeline_name: str, pipeline_root: str, data_root: str, **kwargs: object) -> tfx.dsl.Pipeline:
    """TFX's Chicago taxi example (wide & deep over CategoryEncoding one-hots, a sigmoid) with quantgate after it."""
    return create_tfx_example_pipeline(TAXI, pipeline_name, pipeline_root, data_root, **kwargs)
