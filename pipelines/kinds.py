"""The pipelines quantgate ships, by name (``penguin``, ``taxi``, ``diabetes``, ``digits-qat``, ``images``, and TFX's own
``tfx-imdb`` and ``tfx-taxi``): factory, data writer, defaults.

Plain data, no TensorFlow or TFX import: the factory and the data writer are import paths, resolved when a run or a
compile needs them, so ``quantgate --help`` and ``kubeflow/runner.py --help`` stay fast.
"""

from __future__ import annotations

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

    @property
    def factory(self) -> Callable[..., Any]:
        return _resolve(self.factory_path)

    @property
    def data_writer(self) -> Callable[[str], str]:
        return _resolve(self.data_writer_path)


def _resolve(path: str) -> Callable[..., Any]:
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)


PIPELINES: dict[str, PipelineKind] = {
    "penguin": PipelineKind(
        name="penguin",
        factory_path="quantgate.pipelines.pipeline:create_pipeline",
        data_writer_path="quantgate.pipelines.data:write_penguins_csv",
        pipeline_name="penguin-quantgate",
        home="out/demo",
        trainer_run_fn="quantgate.pipelines.models.penguin.penguin_trainer.run_fn",
    ),
    "taxi": PipelineKind(
        name="taxi",
        factory_path="quantgate.pipelines.taxi:create_taxi_pipeline",
        data_writer_path="quantgate.pipelines.taxi_data:write_taxi_csv",
        pipeline_name="taxi-quantgate",
        home="out/taxi",
        trainer_run_fn="quantgate.pipelines.models.taxi.taxi_trainer.run_fn",
        transform_preprocessing_fn="quantgate.pipelines.models.taxi.taxi_transform.preprocessing_fn",
    ),
    "diabetes": PipelineKind(
        name="diabetes",
        factory_path="quantgate.pipelines.diabetes:create_diabetes_pipeline",
        data_writer_path="quantgate.pipelines.diabetes_data:write_diabetes_csv",
        pipeline_name="diabetes-quantgate",
        home="out/diabetes",
        trainer_run_fn="quantgate.pipelines.models.diabetes.diabetes_trainer.run_fn",
    ),
    "digits-qat": PipelineKind(
        name="digits-qat",
        factory_path="quantgate.pipelines.digits_qat:create_digits_qat_pipeline",
        data_writer_path="quantgate.pipelines.digits_data:write_digits_examples",
        pipeline_name="digits-qat-quantgate",
        home="out/digits-qat",
        trainer_run_fn="quantgate.pipelines.models.digits.digits_trainer.run_fn",
        pushes=False,
    ),
    "images": PipelineKind(
        name="images",
        factory_path="quantgate.pipelines.images:create_image_pipeline",
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
        data_writer_path="quantgate.pipelines.tfx_examples:write_imdb_csv",
        pipeline_name="tfx-imdb-quantgate",
        home="out/tfx-imdb",
        trainer_run_fn="tfx.examples.imdb.imdb_utils_native_keras.run_fn",
        transform_preprocessing_fn="tfx.examples.imdb.imdb_utils_native_keras.preprocessing_fn",
    ),
    "tfx-taxi": PipelineKind(
        name="tfx-taxi",
        factory_path="quantgate.pipelines.tfx_examples:create_tfx_taxi_pipeline",
        data_writer_path="quantgate.pipelines.tfx_examples:write_taxi_example_csv",
        pipeline_name="tfx-taxi-quantgate",
        home="out/tfx-taxi",
        trainer_run_fn="tfx.examples.chicago_taxi_pipeline.taxi_utils_native_keras.run_fn",
        transform_preprocessing_fn="tfx.examples.chicago_taxi_pipeline.taxi_utils_native_keras.preprocessing_fn",
    ),
}
DEFAULT_PIPELINE = "penguin"


def pipeline_kind(name: str) -> PipelineKind:
    """The pipeline called ``name``; an unknown name is a ValueError listing the known ones."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown pipeline {name!r}: choose one of {', '.join(sorted(PIPELINES))}") from None
