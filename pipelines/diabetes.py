"""The diabetes pipeline: a regressor over raw features where plain int8 misses the gate and the Quantizer's
accuracy-aware search finds the model that passes.

``create_diabetes_pipeline`` mirrors ``pipelines/pipeline.py::create_pipeline``:

    CsvExampleGen -> StatisticsGen -> SchemaGen -> Trainer (MLP over the ten raw features) -> Evaluator (float, MAE)
    CsvExampleGen -> RepresentativeDatasetGen (train split: a calibration sample and a disjoint search sample)
      -> Quantizer (int8, accuracy_search on relative MAE) -> QuantizationEvaluator (eval split, relative MAE)
      -> QuantizedModelPusher
"""

from __future__ import annotations

import os

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from quantgate.components import RepresentativeDatasetGen
from quantgate.components.shared.properties import SEARCH_DATASET_KEY
from quantgate.pipelines.config import AccuracySearch, GateConfig, QuantizeConfig
from quantgate.pipelines.models.diabetes.diabetes_trainer import LABEL_KEY
from quantgate.pipelines.quantgate_stage import quantgate_stage

DIABETES_MODULE_FILE = os.path.join(os.path.dirname(__file__), "models", "diabetes", "diabetes_trainer.py")
# At most 2 % more mean absolute error than the float model; the search aims at this gate (its fields left unset).
DIABETES_GATE = GateConfig(metric="mae", max_delta=0.02, delta_type="relative")
DIABETES_QUANTIZE = QuantizeConfig(signature="serving_features", accuracy_search=AccuracySearch())


def create_diabetes_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    *,
    module_file: str = DIABETES_MODULE_FILE,
    trainer_run_fn: str | None = None,
    train_steps: int = 300,
    eval_steps: int = 5,
    trainer_config: dict | None = None,
    float_mae_threshold: float = 80.0,
    calibration_num_examples: int = 150,
    calibration_seed: int = 0,
    representative_num_search_examples: int = 60,
    quantize: QuantizeConfig | None = None,
    gate: GateConfig | None = None,
    beam_pipeline_args: list[str] | None = None,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    enable_cache: bool = True,
    push_destination: str | None = None,
) -> tfx.dsl.Pipeline:
    """Builds the diabetes DAG (see the module docstring).

    Args:
      float_mae_threshold: upper bound on the float model's mean absolute error for the stock Evaluator's blessing.
      calibration_num_examples / calibration_seed / representative_num_search_examples: RepresentativeDatasetGen's
        uniform calibration sample of the train split (~295 rows), and the search sample of the eval split (~147
        rows; the QuantizationEvaluator gates on the others).
      quantize: the Quantizers' configuration (``pipelines/config.py``); default ``DIABETES_QUANTIZE``: int8 with
        the accuracy search on, which aims at the gate; ``accuracy_search=None`` turns the search off (then set
        ``representative_num_search_examples=0`` too).
      gate: default ``DIABETES_GATE``: relative MAE within 2 % on the eval split.
      the others: as ``pipelines.pipeline.create_pipeline``.
    """
    quantize = quantize or DIABETES_QUANTIZE
    gate = gate or DIABETES_GATE
    example_gen = tfx.components.CsvExampleGen(input_base=data_root)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    trainer = tfx.components.Trainer(
        module_file=None if trainer_run_fn else module_file,
        run_fn=trainer_run_fn,
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=eval_steps),
        custom_config=trainer_config or {},
    )
    representative_dataset_gen = RepresentativeDatasetGen(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        split="train",
        num_examples=calibration_num_examples,
        strategy="uniform",
        seed=calibration_seed,
        num_search_examples=representative_num_search_examples,
    )
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        eval_config=_float_eval_config(float_mae_threshold),
    )
    quantizers, quantization_evaluator, pusher = quantgate_stage(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        float_blessing=evaluator.outputs["blessing"],
        representative_dataset=representative_dataset_gen.outputs["representative_dataset"],
        search_dataset=representative_dataset_gen.outputs.get(SEARCH_DATASET_KEY),
        label_key=LABEL_KEY,
        quantize=quantize,
        gate=gate,
        push_base_directory=push_destination or f"{pipeline_root.rstrip('/')}/serving_model",
    )
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, trainer, representative_dataset_gen, *quantizers,
                    quantization_evaluator, evaluator, pusher],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )


def _float_eval_config(mae_threshold: float) -> tfma.EvalConfig:
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key=LABEL_KEY)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(
                class_name="MeanAbsoluteError",
                threshold=tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(upper_bound={"value": mae_threshold}))),
        ])],
    )
