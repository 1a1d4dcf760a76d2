"""RepresentativeDatasetGen: a seeded, reproducible calibration sample of an Examples split, as a TFX artifact."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.representative_dataset import executor
from components.representative_dataset.sampling import UNIFORM, SamplingConfig
from components.types import RepresentativeDataset


class RepresentativeDatasetGenSpec(ComponentSpec):
    """Inputs, parameters and output of RepresentativeDatasetGen."""

    PARAMETERS = {
        executor.SPLIT_KEY: ExecutionParameter(type=str),
        executor.NUM_EXAMPLES_KEY: ExecutionParameter(type=int),
        executor.STRATEGY_KEY: ExecutionParameter(type=str),
        executor.LABEL_KEY_KEY: ExecutionParameter(type=str, optional=True),
        executor.SEED_KEY: ExecutionParameter(type=int),
        # An int, not a bool: MLMD stores execution properties as int, double or string.
        executor.ALLOW_EVAL_SPLIT_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema, optional=True),
    }
    OUTPUTS = {
        executor.REPRESENTATIVE_DATASET_KEY: ChannelParameter(type=RepresentativeDataset),
    }


class RepresentativeDatasetGen(base_beam_component.BaseBeamComponent):
    """Samples ``num_examples`` tf.Examples of one split, the same ones for the same data and seed on any runner.

    Output ``representative_dataset`` (``components.RepresentativeDataset``): ``data.tfrecord.gz`` (the sampled
    serialized tf.Examples, bytes unchanged, in rank order) and ``manifest.json``; read them with
    ``components.representative_dataset.storage.read_examples`` / ``read_manifest``.
    """

    SPEC_CLASS = RepresentativeDatasetGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        schema: types.BaseChannel | None = None,
        split: str = "train",
        num_examples: int = 300,
        strategy: str = UNIFORM,
        label_key: str | None = None,
        seed: int = 0,
        allow_eval_split: bool = False,
    ) -> None:
        """Builds the component; bad parameter values fail here, before any pipeline runs.

        Args:
          examples: an Examples channel (tf.Example payload), e.g. ``CsvExampleGen.outputs['examples']``.
          schema: optional Schema channel; when given, ``label_key`` must be one of its features.
          split: the split to sample; the eval split is refused unless ``allow_eval_split``.
          num_examples: how many examples to keep (>= 1); a smaller split is taken whole, with a warning.
          strategy: ``'uniform'`` or ``'stratified'`` (per-class quotas proportional to class frequency, at least
            one per class present; needs ``label_key``).
          label_key: the class feature; with it the manifest records class counts of the split and the sample.
          seed: the hash seed (0 <= seed < 2**63); another seed gives another sample.
          allow_eval_split: permit sampling the eval split (it leaks evaluation data into calibration).
        """
        SamplingConfig(num_examples=num_examples, strategy=strategy, seed=seed, label_key=label_key)
        spec = RepresentativeDatasetGenSpec(
            examples=examples,
            schema=schema,
            split=split,
            num_examples=num_examples,
            strategy=strategy,
            label_key=label_key,
            seed=seed,
            allow_eval_split=int(allow_eval_split),
            representative_dataset=types.Channel(type=RepresentativeDataset),
        )
        super().__init__(spec=spec)
