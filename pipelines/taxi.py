"""The Chicago taxi pipeline: Transform before the Trainer, the model trained on transformed features.

``create_taxi_pipeline`` mirrors ``pipelines/pipeline.py::create_pipeline``:

    CsvExampleGen -> StatisticsGen -> SchemaGen -> Transform -> Trainer -> Evaluator (float, AUC >= threshold)
    CsvExampleGen -> RepresentativeDatasetGen (raw train examples, uniform) -> Quantizer (through the transform graph)
      -> QuantizationEvaluator (raw eval examples through the transform graph; AUC, sliced by raw payment_type)
      -> QuantizedModelPusher (ships the transform's vocabularies beside model.tflite)

The quantgate components read RAW examples and the same ``transform_graph`` as the Trainer: calibration, the float
model and the int8 model see the tensors Transform makes, and the pushed version says which graph that was.
"""

from __future__ import annotations

import os

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from quantgate.components import RepresentativeDatasetGen
from quantgate.components.shared.properties import SEARCH_DATASET_KEY
from quantgate.pipelines.config import GateConfig, QuantizeConfig
from quantgate.pipelines.quantgate_stage import quantgate_stage

TAXI_MODULE_DIR = os.path.join(os.path.dirname(__file__), "models", "taxi")
TAXI_TRANSFORM_MODULE_FILE = os.path.join(TAXI_MODULE_DIR, "taxi_transform.py")
TAXI_TRAINER_MODULE_FILE = os.path.join(TAXI_MODULE_DIR, "taxi_trainer.py")
RAW_LABEL_KEY = "tips"
LABEL_KEY = "tips_xf"
SLICE_KEY = "payment_type"
TAXI_QUANTIZE = QuantizeConfig(signature="serving_features")
TAXI_GATE = GateConfig(metric="auc", slicing_feature_keys=(SLICE_KEY,))


def create_taxi_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    *,
    transform_module_file: str = TAXI_TRANSFORM_MODULE_FILE,
    transform_preprocessing_fn: str | None = None,
    module_file: str = TAXI_TRAINER_MODULE_FILE,
    trainer_run_fn: str | None = None,
    train_steps: int = 300,
    eval_steps: int = 50,
    trainer_config: dict | None = None,
    float_auc_threshold: float = 0.6,
    float_slicing_feature_keys: tuple[str, ...] = (SLICE_KEY,),
    calibration_num_examples: int = 300,
    calibration_seed: int = 0,
    representative_num_search_examples: int = 0,
    quantize: QuantizeConfig | None = None,
    gate: GateConfig | None = None,
    beam_pipeline_args: list[str] | None = None,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    enable_cache: bool = True,
    push_destination: str | None = None,
) -> tfx.dsl.Pipeline:
    """Builds the taxi DAG (see the module docstring).

    Args:
      pipeline_name / pipeline_root / data_root: as ``create_pipeline``; ``data_root`` holds the taxi CSV
        (``pipelines.taxi_data.write_taxi_csv``).
      transform_module_file / transform_preprocessing_fn: Transform's module file, or the import path of its
        ``preprocessing_fn`` (``pipelines.models.taxi.taxi_transform.preprocessing_fn``) when the code ships in the
        image; then the module file is not packaged.
      module_file / trainer_run_fn: the same for the Trainer (``...taxi_trainer.run_fn``); named as in
        ``create_pipeline``, so that a runner passes the Trainer's code to either pipeline alike.
      train_steps / eval_steps: Trainer steps (batches of 64).
      trainer_config: ``custom_config`` for the Trainer (``hidden_units``, ``embedding_dim``, ``learning_rate``,
        ``seed``).
      float_auc_threshold: lower bound on the float model's AUC (label ``tips_xf``) for the Evaluator's blessing.
      float_slicing_feature_keys: the Evaluator's slices besides overall (raw features, e.g. ``payment_type``).
      calibration_num_examples / calibration_seed: RepresentativeDatasetGen's sample of the train split: raw examples,
        uniform (the label ``tips_xf`` exists only after the transform, so there is nothing to stratify on).
      representative_num_search_examples: as ``create_pipeline`` (the search sample, uniform too).
      quantize / gate: as ``create_pipeline`` (``pipelines/config.py``); defaults ``TAXI_QUANTIZE`` (int8 of
        ``serving_features``, no extra candidates) and ``TAXI_GATE`` (AUC on ``tips_xf`` within 0.01, sliced by the
        raw ``payment_type``).
      beam_pipeline_args / metadata_connection_config / enable_cache / push_destination: as ``create_pipeline``.
    """
    quantize = quantize or TAXI_QUANTIZE
    gate = gate or TAXI_GATE
    example_gen = tfx.components.CsvExampleGen(input_base=data_root)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        module_file=None if transform_preprocessing_fn else transform_module_file,
        preprocessing_fn=transform_preprocessing_fn,
    )
    trainer = tfx.components.Trainer(
        module_file=None if trainer_run_fn else module_file,
        run_fn=trainer_run_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=eval_steps),
        custom_config=trainer_config or {},
    )
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        eval_config=_float_eval_config(float_auc_threshold, float_slicing_feature_keys),
    )
    representative_dataset_gen = RepresentativeDatasetGen(
        examples=example_gen.outputs["examples"],
        split="train",
        num_examples=calibration_num_examples,
        strategy="uniform",
        seed=calibration_seed,
        num_search_examples=representative_num_search_examples,
    )
    quantizers, quantization_evaluator, pusher = quantgate_stage(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        float_blessing=evaluator.outputs["blessing"],
        representative_dataset=representative_dataset_gen.outputs["representative_dataset"],
        search_dataset=representative_dataset_gen.outputs.get(SEARCH_DATASET_KEY),
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
        components=[example_gen, statistics_gen, schema_gen, transform, trainer, evaluator,
                    representative_dataset_gen, *quantizers, quantization_evaluator, pusher],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )


def _float_eval_config(auc_threshold: float, slicing_feature_keys: tuple[str, ...]) -> tfma.EvalConfig:
    # The label tips_xf exists only after Transform: TFMA gets it from the model's transform_features signature.
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key=LABEL_KEY,
                                    preprocessing_function_names=["transform_features"])],
        slicing_specs=[tfma.SlicingSpec(), *(tfma.SlicingSpec(feature_keys=[key]) for key in slicing_feature_keys)],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(class_name="BinaryAccuracy"),
                    tfma.MetricConfig(
                        class_name="AUC",
                        # overall only: within a payment type the label is nearly constant (cash tips are not
                        # recorded), and a slice's AUC says little there
                        per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                            slicing_specs=[tfma.SlicingSpec()],
                            threshold=tfma.MetricThreshold(
                                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": auc_threshold})),
                        )],
                    ),
                ]
            )
        ],
    )
