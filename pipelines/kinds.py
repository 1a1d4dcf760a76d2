"""The pipelines quantgate ships, by name (``penguin``, ``taxi``, ``diabetes``, ``digits-qat``, ``images``, and TFX's own
``tfx-imdb`` and ``tfx-taxi``): factory, data writer, defaults.

Plain data, no TensorFlow or TFX import: the factory and the data writer are import paths, resolved when a run or a
compile needs them, so ``quantgate --help`` and ``kubeflow/runner.py --help`` stay fast.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PipelineKind:
    """One pipeline: ``factory(pipeline_name, pipeline_root, data_root, **kwargs)`` and what runs it needs."""

    name: str
    factory_path: str  # module:function, e.g. pipelines.pipeline:create_pipeline
    data_writer_path: str  # module:function taking the data root, returning the written data file's path
    pipeline_name: str  # default pipeline name (local runs and Kubeflow)
    home: str  # default home of a local run
    trainer_run_fn: str  # the Trainer's run_fn inside the image (Kubeflow)
    transform_preprocessing_fn: str | None = None  # Transform's preprocessing_fn inside the image, when any
    pushes: bool = True  # has a QuantizedModelPusher (its factory takes push_destination)
    # module:attribute of the factory's default QuantizeConfig / GateConfig (what ``quantize=None`` / ``gate=None``
    # mean), which the Kubeflow runner's ``--set quantize.<field>=...`` / ``gate.<field>=...`` start from.
    quantize_path: str | None = None
    gate_path: str | None = None

    @property
    def factory(self) -> Callable[..., Any]:
        return _resolve(self.factory_path)

    @property
    def data_writer(self) -> Callable[[str], str]:
        return _resolve(self.data_writer_path)

    def default_configs(self) -> tuple[Any, Any]:
        """The factory's default ``(QuantizeConfig, GateConfig)``; a ValueError when the kind does not name them."""
        if self.quantize_path is None or self.gate_path is None:
            raise ValueError(f"pipeline {self.name!r} names no default quantize / gate configs (PipelineKind "
                             "quantize_path / gate_path), so quantize.* / gate.* keys cannot be set for it")
        return _resolve(self.quantize_path), _resolve(self.gate_path)


def _resolve(path: str) -> Any:
    """``module:name`` or ``module:name.attribute...`` -> that object."""
    module, _, attributes = path.partition(":")
    return functools.reduce(getattr, attributes.split("."), importlib.import_module(module))


PIPELINES: dict[str, PipelineKind] = {
    "penguin": PipelineKind(
        name="penguin",
        factory_path="quantgate.pipelines.pipeline:create_pipeline",
        quantize_path="quantgate.pipelines.pipeline:PENGUIN_QUANTIZE",
        gate_path="quantgate.pipelines.pipeline:PENGUIN_GATE",
        data_writer_path="quantgate.pipelines.data:write_penguins_csv",
        pipeline_name="penguin-quantgate",
        home="out/demo",
        trainer_run_fn="quantgate.pipelines.models.penguin.penguin_trainer.run_fn",
    ),
    "taxi": PipelineKind(
        name="taxi",
        factory_path="quantgate.pipelines.taxi:create_taxi_pipeline",
        quantize_path="quantgate.pipelines.taxi:TAXI_QUANTIZE",
        gate_path="quantgate.pipelines.taxi:TAXI_GATE",
        data_writer_path="quantgate.pipelines.taxi_data:write_taxi_csv",
        pipeline_name="taxi-quantgate",
        home="out/taxi",
        trainer_run_fn="quantgate.pipelines.models.taxi.taxi_trainer.run_fn",
        transform_preprocessing_fn="quantgate.pipelines.models.taxi.taxi_transform.preprocessing_fn",
    ),
    "diabetes": PipelineKind(
        name="diabetes",
        factory_path="quantgate.pipelines.diabetes:create_diabetes_pipeline",
        quantize_path="quantgate.pipelines.diabetes:DIABETES_QUANTIZE",
        gate_path="quantgate.pipelines.diabetes:DIABETES_GATE",
        data_writer_path="quantgate.pipelines.diabetes_data:write_diabetes_csv",
        pipeline_name="diabetes-quantgate",
        home="out/diabetes",
        trainer_run_fn="quantgate.pipelines.models.diabetes.diabetes_trainer.run_fn",
    ),
    "digits-qat": PipelineKind(
        name="digits-qat",
        factory_path="quantgate.pipelines.digits_qat:create_digits_qat_pipeline",
        quantize_path="quantgate.pipelines.digits_qat:DIGITS_QUANTIZE",
        gate_path="quantgate.pipelines.digits_qat:DIGITS_GATE",
        data_writer_path="quantgate.pipelines.digits_data:write_digits_examples",
        pipeline_name="digits-qat-quantgate",
        home="out/digits-qat",
        trainer_run_fn="quantgate.pipelines.models.digits.digits_trainer.run_fn",
        pushes=False,
    ),
    # The default: a CNN big enough that int8 pays (~3.8x smaller than its float32 TFLite), data from scikit-learn.
    "digits-cnn": PipelineKind(
        name="digits-cnn",
        factory_path="quantgate.pipelines.digits_cnn:create_digits_cnn_pipeline",
        quantize_path="quantgate.pipelines.digits_cnn:DIGITS_CNN_QUANTIZE",
        gate_path="quantgate.pipelines.digits_cnn:DIGITS_CNN_GATE",
        data_writer_path="quantgate.pipelines.digits_data:write_digits_examples",
        pipeline_name="digits-cnn-quantgate",
        home="out/digits-cnn",
        trainer_run_fn="quantgate.pipelines.models.digits_cnn.digits_cnn_trainer.run_fn",
    ),
    "images": PipelineKind(
        name="images",
        factory_path="quantgate.pipelines.images:create_image_pipeline",
        quantize_path="quantgate.pipelines.images:IMAGE_QUANTIZE",
        gate_path="quantgate.pipelines.images:IMAGE_GATE",
        data_writer_path="quantgate.pipelines.images_data:write_image_examples",
        pipeline_name="images-quantgate",
        home="out/images",
        trainer_run_fn="quantgate.pipelines.models.images.image_trainer.run_fn",
        transform_preprocessing_fn="quantgate.pipelines.models.images.image_transform.preprocessing_fn",
    ),
    # TFX's own examples, their Transform and Trainer code unchanged (pipelines/tfx_examples.py).
    "tfx-imdb": PipelineKind(
        name="tfx-imdb",
        factory_path="quantgate.pipelines.tfx_examples:create_tfx_imdb_pipeline",
        quantize_path="quantgate.pipelines.tfx_examples:IMDB.quantize",
        gate_path="quantgate.pipelines.tfx_examples:IMDB.gate",
        data_writer_path="quantgate.pipelines.tfx_examples:write_imdb_csv",
        pipeline_name="tfx-imdb-quantgate",
        home="out/tfx-imdb",
        trainer_run_fn="tfx.examples.imdb.imdb_utils_native_keras.run_fn",
        transform_preprocessing_fn="tfx.examples.imdb.imdb_utils_native_keras.preprocessing_fn",
    ),
    "tfx-taxi": PipelineKind(
        name="tfx-taxi",
        factory_path="quantgate.pipelines.tfx_examples:create_tfx_taxi_pipeline",
        quantize_path="quantgate.pipelines.tfx_examples:TAXI.quantize",
        gate_path="quantgate.pipelines.tfx_examples:TAXI.gate",
        data_writer_path="quantgate.pipelines.tfx_examples:write_taxi_example_csv",
        pipeline_name="tfx-taxi-quantgate",
        home="out/tfx-taxi",
        trainer_run_fn="tfx.examples.chicago_taxi_pipeline.taxi_utils_native_keras.run_fn",
        transform_preprocessing_fn="tfx.examples.chicago_taxi_pipeline.taxi_utils_native_keras.preprocessing_fn",
    ),
}
DEFAULT_PIPELINE = "digits-cnn"


def pipeline_kind(name: str) -> PipelineKind:
    """The pipeline called ``name``; an unknown name is a ValueError listing the known ones."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown pipeline {name!r}: choose one of {', '.join(sorted(PIPELINES))}") from None
