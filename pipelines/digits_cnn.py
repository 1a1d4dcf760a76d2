"""The default demo pipeline: a CNN over scikit-learn's 8x8 digits, quantized to int8 where quantization pays.

``quantgate run`` (``--pipeline digits-cnn``); the penguin pipeline stays ``--pipeline penguin``. The data ships in
scikit-learn (1,797 images, no download); the model (``pipelines/models/digits_cnn``) holds about 151,000 weights,
so its int8 TFLite is about 4x smaller than the float32 TFLite of the same function, and the QuantizationEvaluator
times both TFLite models in the same interpreter with the same threads (the like-for-like latency), beside the
float SavedModel's call.
"""

from __future__ import annotations

import os

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from quantgate.components import RepresentativeDatasetGen
from quantgate.pipelines.config import GateConfig, QuantizeConfig
from quantgate.pipelines.models.digits_cnn.digits_cnn_trainer import DENSE_SIGNATURE, LABEL_KEY
from quantgate.pipelines.pipeline import _float_eval_config
from quantgate.pipelines.quantgate_stage import quantgate_stage

DIGITS_CNN_MODULE_FILE = os.path.join(os.path.dirname(__file__), "models", "digits_cnn", "digits_cnn_trainer.py")
# All-integer int8 (int8 input and output too: what an Edge TPU or a microcontroller runs) of the dense signature.
DIGITS_CNN_QUANTIZE = QuantizeConfig(signature=DENSE_SIGNATURE, io_dtype="int8")
# Accuracy may drop by at most 0.02 (absolute), judged on the point delta; its 95% upper bound is reported beside.
DIGITS_CNN_GATE = GateConfig(max_delta=0.02)


def create_digits_cnn_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    *,
    module_file: str = DIGITS_CNN_MODULE_FILE,
    trainer_run_fn: str | None = None,
    label_key: str = LABEL_KEY,
    train_steps: int = 300,
    eval_steps: int = 10,
    trainer_config: dict | None = None,
    float_accuracy_threshold: float = 0.8,
    calibration_num_examples: int = 200,
    calibration_strategy: str = "stratified",
    calibration_seed: int = 0,
    quantize: QuantizeConfig | None = None,
    gate: GateConfig | None = None,
    beam_pipeline_args: list[str] | None = None,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    enable_cache: bool = True,
    push_destination: str | None = None,
) -> tfx.dsl.Pipeline:
    """ImportExampleGen (the digits tf.Examples, ``pipelines/digits_data.py``; split train 2/3, eval 1/3 by hash)
    → StatisticsGen → SchemaGen → Trainer (the CNN) → Evaluator (float model); RepresentativeDatasetGen (train
    split, stratified by digit) → Quantizer → QuantizationEvaluator (eval split) → QuantizedModelPusher.

    Parameters as ``pipelines.pipeline.create_pipeline``'s. ``train_steps`` of 32 examples (300: about 8 epochs of
    the ~1,200 training digits); ``trainer_config``: the module's ``custom_config`` (``conv_filters``,
    ``hidden_units``, ``learning_rate``, ``seed``). ``quantize`` defaults to ``DIGITS_CNN_QUANTIZE`` (int8 with
    int8 I/O of ``serving_features``), ``gate`` to ``DIGITS_CNN_GATE`` (accuracy within 0.02).
    """
    quantize = quantize or DIGITS_CNN_QUANTIZE
    gate = gate or DIGITS_CNN_GATE
    example_gen = tfx.components.ImportExampleGen(input_base=data_root)
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
