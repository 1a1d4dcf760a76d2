"""The quantgate demo pipeline: one ``create_pipeline`` for local runs and for Kubeflow / Vertex AI."""

from __future__ import annotations

import os

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from quantgate.components import RepresentativeDatasetGen
from quantgate.components.shared.properties import SEARCH_DATASET_KEY
from quantgate.pipelines.config import GateConfig, QuantizeConfig
from quantgate.pipelines.quantgate_stage import quantgate_stage

PENGUIN_MODULE_FILE = os.path.join(os.path.dirname(__file__), "models", "penguin", "penguin_trainer.py")
PENGUIN_QUANTIZE = QuantizeConfig(signature="serving_features", candidate_modes=("float16", "dynamic_range"))
PENGUIN_GATE = GateConfig(slicing_feature_keys=("island",))


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    *,
    module_file: str = PENGUIN_MODULE_FILE,
    trainer_run_fn: str | None = None,
    label_key: str = "species",
    train_steps: int = 300,
    eval_steps: int = 20,
    trainer_config: dict | None = None,
    float_accuracy_threshold: float = 0.6,
    calibration_num_examples: int = 200,
    calibration_strategy: str = "stratified",
    calibration_seed: int = 0,
    representative_num_search_examples: int = 0,
    quantize: QuantizeConfig | None = None,
    gate: GateConfig | None = None,
    beam_pipeline_args: list[str] | None = None,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    enable_cache: bool = True,
    push_destination: str | None = None,
) -> tfx.dsl.Pipeline:
    """Builds the DAG: CsvExampleGen → StatisticsGen → SchemaGen → Trainer → Evaluator (float model), and after the
    Trainer: RepresentativeDatasetGen (train split) → Quantizer → QuantizationEvaluator (eval split) →
    QuantizedModelPusher (pushes only when both blessings say blessed).

    Args:
      pipeline_name: the pipeline's name (Kubeflow wants ``[a-z0-9-]``).
      pipeline_root: where artifacts go; any URI TFX's filesystem supports (local path, ``gs://``).
      data_root: folder of CSV files for CsvExampleGen (default split: train 2/3, eval 1/3 by hash).
      module_file: the Trainer module file; its folder is packaged whole into the user-module wheel.
      trainer_run_fn: import path of the Trainer's ``run_fn`` (e.g. ``pipelines.models.penguin.penguin_trainer.run_fn``)
        when the code ships in the container image (Kubeflow / Vertex); then ``module_file`` is not packaged.
      label_key: the label feature in the examples.
      train_steps / eval_steps: Trainer steps.
      trainer_config: ``custom_config`` for the Trainer module (``hidden_units``, ``learning_rate``, ``seed``).
      float_accuracy_threshold: lower bound on the float model's accuracy for the stock Evaluator's blessing.
      calibration_num_examples / calibration_strategy / calibration_seed: RepresentativeDatasetGen's sample of
        the train split (size, ``'uniform'`` or ``'stratified'`` by ``label_key``, hash seed). 200 is below the
        penguin train split's 231 examples, so the demo really samples.
      representative_num_search_examples: > 0 makes RepresentativeDatasetGen also output ``search_dataset``, a
        sample of that size disjoint from the calibration one (for the Quantizer's accuracy search); 0: none.
      quantize: the Quantizers' configuration (``pipelines/config.py``); default ``PENGUIN_QUANTIZE``: int8 of the
        Trainer's ``serving_features`` signature, with float16 and dynamic range as extra candidates (on the penguin
        model int8 is the smallest, so it is the one pushed when it passes). ``accuracy_search`` needs
        ``representative_num_search_examples`` > 0.
      gate: the QuantizationEvaluator's gate on the eval split; default ``PENGUIN_GATE``: accuracy within 0.01,
        sliced by ``island``, the smallest passing candidate blessed. A negative ``max_delta`` forces a refusal.
      beam_pipeline_args: passed to every Beam-based component (e.g. ``--direct_num_workers=2``).
      metadata_connection_config: MLMD connection; ``None`` leaves it to the orchestrator (Kubeflow / Vertex).
      enable_cache: reuse executions whose inputs and parameters are unchanged.
      push_destination: base directory of the QuantizedModelPusher (``<base>/<version>/model.tflite`` +
        ``manifest.json``, only when both blessings say blessed); default ``<pipeline_root>/serving_model``.
    """
    quantize = quantize or PENGUIN_QUANTIZE
    gate = gate or PENGUIN_GATE
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
        strategy=calibration_strategy,
        label_key=label_key,
        seed=calibration_seed,
        num_search_examples=representative_num_search_examples,
    )
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        eval_config=_float_eval_config(label_key, float_accuracy_threshold),
    )
    quantizers, quantization_evaluator, pusher = quantgate_stage(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        float_blessing=evaluator.outputs["blessing"],
        representative_dataset=representative_dataset_gen.outputs["representative_dataset"],
        search_dataset=representative_dataset_gen.outputs.get(SEARCH_DATASET_KEY),
        label_key=label_key,
        schema=schema_gen.outputs["schema"],
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


def _float_eval_config(label_key: str, accuracy_threshold: float) -> tfma.EvalConfig:
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key=label_key)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(
                        class_name="SparseCategoricalAccuracy",
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": accuracy_threshold})
                        ),
                    )
                ]
            )
        ],
    )
