"""Seeded, worker-count-independent sampling of serialized tf.Examples, as Beam transforms.

Each record is ranked by a keyed BLAKE2b hash of its bytes (the seed is the key) and the ``k`` smallest ranks are
kept with Beam's ``Top`` combiners. A rank depends on the record and the seed alone, never on how the data is
split among workers or read in which order, so the sample is the same on any runner and worker count. Ties (equal
hashes) are broken by the record bytes, so the order is total.
"""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass
from typing import NamedTuple

import apache_beam as beam
from tensorflow.core.example import example_pb2

UNIFORM = "uniform"
STRATIFIED = "stratified"
STRATEGIES = (UNIFORM, STRATIFIED)

# A rank is (hash of the record, the record): the hash decides, the bytes only break ties.
Rank = tuple[bytes, bytes]


@dataclass(frozen=True)
class SamplingConfig:
    """What to sample. Checked on construction, so a bad value fails when the pipeline is built."""

    num_examples: int = 300
    strategy: str = UNIFORM
    seed: int = 0
    label_key: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.num_examples, bool) or not isinstance(self.num_examples, int) or self.num_examples < 1:
            raise ValueError(
                f"RepresentativeDatasetGen: num_examples must be an integer >= 1, got {self.num_examples!r}; "
                "pass the calibration sample size (300 is typical for int8 calibration)"
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"RepresentativeDatasetGen: strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        if self.strategy == STRATIFIED and not self.label_key:
            raise ValueError(
                "RepresentativeDatasetGen: strategy='stratified' needs label_key (the feature holding the class); "
                "pass label_key=... or use strategy='uniform'"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            # MLMD stores the seed as an int64 property.
            raise ValueError(f"RepresentativeDatasetGen: seed must be an integer in [0, 2**63), got {self.seed!r}")


class Sample(NamedTuple):
    """The outcome of sampling one split.

    ``records`` are in rank order. The class counts are keyed by the label value as a string and are ``None``
    without a label key.
    """

    records: list[bytes]
    source_num_examples: int
    source_class_counts: dict[str, int] | None
    class_counts: dict[str, int] | None


def rank(record: bytes, seed: int) -> Rank:
    """The record's sort key for ``seed``: a keyed 128-bit BLAKE2b hash, then the record itself."""
    key = seed.to_bytes(max(1, (seed.bit_length() + 7) // 8), "big")
    return hashlib.blake2b(record, digest_size=16, key=key).digest(), record


def label_class(record: bytes, label_key: str) -> str:
    """The label of a serialized tf.Example as a string (``int64``/``float`` printed, ``bytes`` decoded).

    Raises ValueError when the example lacks the label or holds other than one value: the sample could not be
    stratified by it.
    """
    example = example_pb2.Example.FromString(record)
    features = example.features.feature
    if label_key not in features:
        raise ValueError(
            f"RepresentativeDatasetGen: label_key {label_key!r} is not present in an example of the split "
            f"(it has {sorted(features)}); pass the name of the label feature as label_key"
        )
    feature = features[label_key]
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    if len(values) != 1:
        raise ValueError(
            f"RepresentativeDatasetGen: label_key {label_key!r} holds {len(values)} values in an example, "
            "stratified sampling needs exactly one class per example; pass a single-valued label as label_key"
        )
    value = values[0]
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else str(value)


def stratified_quotas(class_counts: dict[str, int], num_examples: int) -> dict[str, int]:
    """Per-class sample sizes proportional to ``class_counts`` that add up to ``num_examples``.

    Largest-remainder rounding, at least one example for every class present; every class whole when the split
    has no more than ``num_examples`` examples. Deterministic: ties go to the class key that sorts first.
    """
    total = sum(class_counts.values())
    if total <= num_examples:
        return dict(class_counts)
    present = sorted(c for c, n in class_counts.items() if n > 0)
    if len(present) > num_examples:
        raise ValueError(
            f"RepresentativeDatasetGen: stratified sampling keeps at least one example of each of the "
            f"{len(present)} classes, more than num_examples={num_examples}; raise num_examples to at least "
            f"{len(present)} or use strategy='uniform'"
        )
    quotas = {c: max(1, num_examples * class_counts[c] // total) for c in present}
    # The one-per-class floor can overshoot: give back from the classes holding the most.
    while sum(quotas.values()) > num_examples:
        largest = min(present, key=lambda c: (-quotas[c], c))
        quotas[largest] -= 1
    # Hand out what floor() left over, largest remainder first; a class never gets more than it has.
    by_remainder = sorted(present, key=lambda c: (-(num_examples * class_counts[c] % total), c))
    while (missing := num_examples - sum(quotas.values())) > 0:
        eligible = [c for c in by_remainder if quotas[c] < class_counts[c]]
        for c in eligible[:missing]:
            quotas[c] += 1
    return quotas


def _to_sample(ranked: list[Rank], source_num_examples: int, source_class_counts: dict[str, int] | None,
               label_key: str | None) -> Sample:
    records = [record for _, record in sorted(ranked)]
    if label_key is None:
        return Sample(records, source_num_examples, None, None)
    class_counts = collections.Counter(label_class(record, label_key) for record in records)
    return Sample(records, source_num_examples, dict(sorted((source_class_counts or {}).items())),
                  dict(sorted(class_counts.items())))


def _stratified_choice(per_class_top: list[tuple[str, list[Rank]]], source_class_counts: dict[str, int],
                       num_examples: int) -> list[Rank]:
    quotas = stratified_quotas(source_class_counts, num_examples)
    return [ranked for cls, top in per_class_top for ranked in top[: quotas[cls]]]


def _labelled(records: beam.PCollection, label_key: str) -> beam.PCollection:
    return records | "Label" >> beam.Map(lambda record: (label_class(record, label_key), record))


def _class_counts(labelled: beam.PCollection) -> beam.pvalue.AsDict:
    return beam.pvalue.AsDict(labelled | "CountPerClass" >> beam.combiners.Count.PerKey())


class KeepSmallestRanks(beam.PTransform):
    """Serialized tf.Examples -> one list of the ``num_examples`` smallest ranks (``uniform``)."""

    def __init__(self, num_examples: int, seed: int) -> None:
        super().__init__()
        self._num_examples, self._seed = num_examples, seed

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (records
                | "Rank" >> beam.Map(rank, seed=self._seed)
                | "KeepSmallest" >> beam.combiners.Top.Smallest(self._num_examples))


class KeepSmallestRanksPerClass(beam.PTransform):
    """``(class, record)`` pairs -> one list of ranks: each class's smallest, as many as its quota (``stratified``).

    Each class keeps its ``num_examples`` smallest ranks until the class counts fix the quotas.
    """

    def __init__(self, num_examples: int, seed: int, class_counts: beam.pvalue.AsDict) -> None:
        super().__init__()
        self._num_examples, self._seed, self._class_counts = num_examples, seed, class_counts

    def expand(self, labelled: beam.PCollection) -> beam.PCollection:
        return (labelled
                | "Rank" >> beam.MapTuple(lambda cls, record: (cls, rank(record, self._seed)))
                | "KeepSmallestPerClass" >> beam.combiners.Top.SmallestPerKey(self._num_examples)
                | "GatherClasses" >> beam.combiners.ToList()
                | "ApplyQuotas" >> beam.Map(_stratified_choice, source_class_counts=self._class_counts,
                                            num_examples=self._num_examples))


class SampleExamples(beam.PTransform):
    """PCollection of serialized tf.Examples -> PCollection of exactly one ``Sample``.

    One pass over the data; memory O(num_examples) for ``uniform`` and O(num_examples x classes) for
    ``stratified`` (the class counts are computed in the same pipeline). With a label key, the classes are counted
    in the split and in the sample. An empty input gives a ``Sample`` with no records.
    """

    def __init__(self, config: SamplingConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        config = self._config
        count = records | "CountExamples" >> beam.combiners.Count.Globally()
        labelled = class_counts = None
        if config.label_key is not None:
            labelled = _labelled(records, config.label_key)
            class_counts = _class_counts(labelled)
        if config.strategy == UNIFORM:
            chosen = records | "Choose" >> KeepSmallestRanks(config.num_examples, config.seed)
        else:
            chosen = labelled | "Choose" >> KeepSmallestRanksPerClass(config.num_examples, config.seed, class_counts)
        return chosen | "ToSample" >> beam.Map(
            _to_sample, source_num_examples=beam.pvalue.AsSingleton(count), source_class_counts=class_counts,
            label_key=config.label_key,
        )
