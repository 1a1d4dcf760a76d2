"""The digits QAT pipeline: a float CNN and its quantization-aware fine-tune, each quantized to int8, compared with
the float model in one QuantizationEvaluator pass.

``quantgate run --pipeline digits-qat``; the Kubeflow runner compiles it with ``--pipeline digits-qat``.
"""

from __future__ import annotations

import os

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from quantgate.components import QuantizationEvaluator, Quantizer, RepresentativeDatasetGen
from quantgate.pipelines.config import GateConfig, QuantizeConfig
from quantgate.pipelines.models.digits.digits_trainer import DENSE_SIGNATURE, LABEL_KEY
from quantgate.pipelines.quantgate_stage import (
    evaluator_parameters,
    extra_candidate_quantizers,
    quantizer_parameters,
)

DIGITS_MODULE_FILE = os.path.join(os.path.dirname(__file__), "models", "digits", "digits_trainer.py")
QAT_TRAINER_ID = "QatTrainer"
PTQ_QUANTIZER_ID = "PtqQuantizer"
QAT_QUANTIZER_ID = "QatQuantizer"
DIGITS_QUANTIZE = QuantizeConfig(signature=DENSE_SIGNATURE, io_dtype="int8")
DIGITS_GATE = GateConfig()


def create_digits_qat_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    *,
    module_file: str = DIGITS_MODULE_FILE,
    trainer_run_fn: str | None = None,
    label_key: str = LABEL_KEY,
    train_steps: int = 400,
    qat_train_steps: int = 120,
    eval_steps: int = 20,
    trainer_config: dict | None = None,
    calibration_num_examples: int = 200,
    calibration_strategy: str = "stratified",
    calibration_seed: int = 0,
    quantize: QuantizeConfig | None = None,
    gate: GateConfig | None = None,
    beam_pipeline_args: list[str] | None = None,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """ImportExampleGen (the digits tf.Examples) → StatisticsGen → SchemaGen → Trainer (float CNN) → QatTrainer
    (its quantization-aware fine-tune: the same module, ``base_model`` = the float model);
    RepresentativeDatasetGen (train split, stratified by digit) → PtqQuantizer (post-training ``int8`` of the float
    model) and Quantizer (``quantize.mode`` on the QAT model: ``int8`` converts it as ``qat``) → one
    QuantizationEvaluator scoring the float model and both candidates on the eval split in one Beam pass (its
    report and ``metrics.json`` show float, PTQ int8 and QAT int8 side by side; ``selection`` picks the blessed one).

    No pusher: the point is the comparison (the penguin and taxi pipelines show the push). Parameters as
    ``pipelines.pipeline.create_pipeline``'s; ``qat_train_steps``: the fine-tune's steps (``custom_config``
    ``qat_epochs`` and ``qat_learning_rate`` tune it further). ``quantize`` (default ``DIGITS_QUANTIZE``: the dense
    signature, int8 I/O) applies to both quantized models, but for the PTQ one's mode, always ``int8``; its
    ``candidate_modes``: more post-training modes of the float model (``Quantizer_<mode>``), compared in the same
    pass; its ``accuracy_search`` is refused (the QAT model converts with its learned ranges). ``gate`` (default
    ``DIGITS_GATE``: accuracy within 0.01) judges every candidate and its ``selection`` picks the blessed one.
    """
    quantize = quantize or DIGITS_QUANTIZE
    gate = gate or DIGITS_GATE
    if quantize.accuracy_search is not None:
        raise ValueError("digits-qat: quantize.accuracy_search is not wired in this pipeline (the QAT model is "
                         "converted with its learned ranges); use the penguin, taxi or diabetes pipeline for the search.")
    example_gen = tfx.components.ImportExampleGen(input_base=data_root)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    code = {"module_file": None if trainer_run_fn else module_file, "run_fn": trainer_run_fn}
    common = {"examples": example_gen.outputs["examples"], "schema": schema_gen.outputs["schema"],
              "eval_args": tfx.proto.EvalArgs(num_steps=eval_steps), "custom_config": trainer_config or {}}
    trainer = tfx.components.Trainer(**code, **common, train_args=tfx.proto.TrainArgs(num_steps=train_steps))
    qat_trainer = tfx.components.Trainer(**code, **common, base_model=trainer.outputs["model"],
                                         train_args=tfx.proto.TrainArgs(num_steps=qat_train_steps),
                                         ).with_id(QAT_TRAINER_ID)
    representative_dataset_gen = RepresentativeDatasetGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"], split="train",
        num_examples=calibration_num_examples, strategy=calibration_strategy, label_key=label_key,
        seed=calibration_seed)
    representative_dataset = representative_dataset_gen.outputs["representative_dataset"]
    quantizer_settings = quantizer_parameters(quantize, gate, label_key)
    quantizers = [
        Quantizer(model=model, representative_dataset=representative_dataset, **{**quantizer_settings, "mode": mode},
                  ).with_id(component_id)
        for component_id, model, mode in ((PTQ_QUANTIZER_ID, trainer.outputs["model"], "int8"),
                                          (QAT_QUANTIZER_ID, qat_trainer.outputs["model"], quantize.mode))]
    quantizers += extra_candidate_quantizers(trainer.outputs["model"], representative_dataset, quantize)
    quantization_evaluator = QuantizationEvaluator(
        model=trainer.outputs["model"],
        quantized_model=[quantizer.outputs["quantized_model"] for quantizer in quantizers],
        examples=example_gen.outputs["examples"],
        **evaluator_parameters(quantize, gate, label_key))
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, trainer, qat_trainer, representative_dataset_gen,
                    *quantizers, quantization_evaluator],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
