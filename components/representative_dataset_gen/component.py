"""RepresentativeDatasetGen: a seeded, reproducible calibration sample of an Examples split, as a TFX artifact."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec

from quantgate.components.representative_dataset_gen import executor
from quantgate.components.representative_dataset_gen.sampling import UNIFORM, SamplingConfig
from quantgate.components.representative_dataset_gen.spec import RepresentativeDatasetGenSpec
from quantgate.components.types import RepresentativeDataset


class RepresentativeDatasetGen(base_beam_component.BaseBeamComponent):
    """Samples ``num_examples`` tf.Examples of one split, the same ones for the same data and seed on any runner.

    Inputs: ``examples`` (Examples, tf.Example payload), optional ``schema`` (Schema: ``label_key`` is checked
    against it). Parameters: ``split``, ``num_examples``, ``strategy``, ``label_key``, ``seed``,
    ``allow_eval_split``, ``num_search_examples`` (see ``__init__``).

    Output ``representative_dataset`` (``quantgate.RepresentativeDataset``):
      files: ``data.tfrecord.gz`` (the sampled serialized tf.Examples, bytes unchanged, in rank order) and
        ``manifest.json`` (written last; read both with ``components.representative_dataset_gen.storage``);
      custom properties: ``num_examples``, ``strategy``, ``seed``, ``split``, ``sha256`` (of the data file),
        ``num_examples_requested``, ``source_num_examples``, ``source_examples_id``, ``label_key`` (when given),
        ``search_dataset_uri`` (with a search sample).

    Output ``search_dataset`` (same type, files and properties; only when ``num_search_examples`` > 0): a sample of
    ``search_split`` (the eval split by default: examples the model did not train on) with the same seed and
    strategy, none of them in the calibration sample; with ``search_split == split``, the next
    ``num_search_examples`` ranks after the calibration sample's. Its manifest and properties name the calibration
    sample (``calibration_dataset_uri``), whose name it in turn. Wire it into the Quantizer's ``search_dataset``
    (the accuracy search scores candidates on it) and into the QuantizationEvaluator's (the gate leaves these
    examples out, so it judges on examples the search did not see).
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
        num_search_examples: int = 0,
        search_split: str = "eval",
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
          num_search_examples: the size of a second sample, disjoint from the first, output as ``search_dataset``
            (the Quantizer's accuracy search scores candidates on it); 0 (the default): no such output.
          search_split: the split the search sample comes from: ``'eval'`` (the default) or a validation split,
            never rows the model was trained on (a model fits those better than unseen ones, so every candidate
            would look worse there than it is); ``split`` itself draws the sample from the calibration split.
        """
        SamplingConfig(num_examples=num_examples, strategy=strategy, seed=seed, label_key=label_key,
                       num_search_examples=num_search_examples)
        spec = RepresentativeDatasetGenSpec(
            examples=examples,
            schema=schema,
            split=split,
            num_examples=num_examples,
            strategy=strategy,
            label_key=label_key,
            seed=seed,
            allow_eval_split=int(allow_eval_split),
            num_search_examples=num_search_examples,
            search_split=search_split,
            representative_dataset=types.Channel(type=RepresentativeDataset),
            search_dataset=types.Channel(type=RepresentativeDataset) if num_search_examples else None,
        )
        super().__init__(spec=spec)
