"""Seeded, worker-count-independent sampling of serialized tf.Examples, as Beam transforms.

Each record is ranked by a keyed BLAKE2b hash of its bytes (the seed is the key); the ``k`` smallest ranks are the
calibration sample and, with ``num_search_examples = m``, the next ``m`` the search sample, so the two are disjoint
by construction. A rank depends on the record and the seed alone, never on how the data is split among workers or
read in which order, so both samples are the same on any runner and worker count. Ties (equal hashes) are broken
by the record bytes, so the order is total.

One pass and one Python call per record: a DoFn keeps, per bundle, the count, the class counts and the candidates
whose rank can still make the cut (``_Candidates``); a combiner merges the bundles' few partial results.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue
from tensorflow.core.example import example_pb2, feature_pb2

UNIFORM = "uniform"
STRATIFIED = "stratified"
STRATEGIES = (UNIFORM, STRATIFIED)

# A rank is (hash of the record, the record): the hash decides, the bytes only break ties.
Rank = tuple[bytes, bytes]
_DIGEST_SIZE = 16


@dataclass(frozen=True)
class SamplingConfig:
    """What to sample. Checked on construction, so a bad value fails when the pipeline is built."""

    num_examples: int = 300
    strategy: str = UNIFORM
    seed: int = 0
    label_key: str | None = None
    num_search_examples: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.num_examples, bool) or not isinstance(self.num_examples, int) or self.num_examples < 1:
            raise ValueError(
                f"RepresentativeDatasetGen: num_examples must be an integer >= 1, got {self.num_examples!r}; "
                "pass the calibration sample size (300 is typical for int8 calibration)"
            )
        if (isinstance(self.num_search_examples, bool) or not isinstance(self.num_search_examples, int)
                or self.num_search_examples < 0):
            raise ValueError(
                "RepresentativeDatasetGen: num_search_examples must be an integer >= 0, got "
                f"{self.num_search_examples!r}; pass 0 for no search sample, or its size"
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

    ``records`` (the calibration sample) and ``search_records`` (the search sample, empty unless
    ``num_search_examples``) are in rank order and share no rank. The class counts are keyed by the label value
    as a string and are ``None`` without a label key.
    """

    records: list[bytes]
    source_num_examples: int
    source_class_counts: dict[str, int] | None
    class_counts: dict[str, int] | None
    search_records: list[bytes] = []
    search_class_counts: dict[str, int] | None = None


def _hasher(seed: int) -> Any:
    """BLAKE2b keyed with ``seed``; ``copy()`` then ``update(record)`` hashes a record without re-keying."""
    key = seed.to_bytes(max(1, (seed.bit_length() + 7) // 8), "big")
    return hashlib.blake2b(digest_size=_DIGEST_SIZE, key=key)


def rank(record: bytes, seed: int) -> Rank:
    """The record's sort key for ``seed``: a keyed 128-bit BLAKE2b hash, then the record itself."""
    hasher = _hasher(seed).copy()
    hasher.update(record)
    return hasher.digest(), record


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
    value = _feature_value(feature)
    if value is None:
        kind = feature.WhichOneof("kind")
        raise ValueError(
            f"RepresentativeDatasetGen: label_key {label_key!r} holds {len(getattr(feature, kind).value) if kind else 0} "
            "values in an example, stratified sampling needs exactly one class per example; pass a single-valued "
            "label as label_key"
        )
    return value


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _feature_value(feature: feature_pb2.Feature) -> str | None:
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else ()
    if len(values) != 1:
        return None
    value = values[0]
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else str(value)


class LabelReader:
    """``label_class`` without parsing the whole tf.Example: it finds the label's map entry in the bytes.

    The entry is ``0x0a <entry length> 0x0a <key length> <key> 0x12 <feature length> <feature>``. When the key
    occurs once in the record, framed so (lengths under 128), the feature's few bytes are looked up in a cache of
    the labels seen (a handful of classes: one parse of a tiny ``Feature`` each); any other record goes to
    ``label_class``, which parses it and raises the errors. (A record whose label is missing but one of whose bytes
    values holds a whole framed entry for the key would be read from there: a tf.Example nested in a feature, with
    the label, and none outside.)
    """

    _CACHE_SIZE = 4096

    def __init__(self, label_key: str) -> None:
        self._label_key = label_key
        key = label_key.encode("utf-8")
        self._needle = b"\x0a" + _encode_varint(len(key)) + key + b"\x12"
        self._labels: dict[bytes, str | None] = {}

    def __call__(self, record: bytes) -> str:
        needle = self._needle
        at = record.find(needle)
        if at >= 2 and record.find(needle, at + 1) < 0:
            start = at + len(needle)
            length = record[start]
            end = start + 1 + length
            if length < 0x80 and end - at < 0x80 and record[at - 2] == 0x0A and record[at - 1] == end - at:
                feature = record[start + 1:end]
                label = self._labels.get(feature)
                if label is None and len(self._labels) < self._CACHE_SIZE:
                    label = self._labels[feature] = _feature_value(feature_pb2.Feature.FromString(feature))
                if label is not None:
                    return label
        return label_class(record, self._label_key)


def stratified_quotas(class_counts: dict[str, int], num_examples: int,
                      parameter: str = "num_examples") -> dict[str, int]:
    """Per-class sample sizes proportional to ``class_counts`` that add up to ``num_examples``.

    Largest-remainder rounding, at least one example for every class present; every class whole when the split
    has no more than ``num_examples`` examples. Deterministic: ties go to the class key that sorts first.
    ``parameter`` names the size in the error (``num_search_examples`` for the search sample).
    """
    total = sum(class_counts.values())
    if total <= num_examples:
        return dict(class_counts)
    present = sorted(c for c, n in class_counts.items() if n > 0)
    if len(present) > num_examples:
        raise ValueError(
            f"RepresentativeDatasetGen: stratified sampling keeps at least one example of each of the "
            f"{len(present)} classes, more than {parameter}={num_examples}; raise {parameter} to at least "
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


class _Candidates:
    """The smallest keys (``rank digest + record``: bytes order is rank order) seen so far, at most ``capacity``.

    Keys above the current cut are dropped on arrival, one comparison; the list is cut back to ``capacity`` when
    it reaches twice that, so memory stays O(capacity) and the work per record O(1) on average.
    """

    __slots__ = ("capacity", "keys", "cut")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.keys: list[bytes] = []
        self.cut: bytes | None = None

    def offer(self, key: bytes) -> None:
        if self.cut is not None and key > self.cut:
            return
        self.keys.append(key)
        if len(self.keys) >= 2 * self.capacity:
            self.shrink()

    def shrink(self) -> None:
        self.keys.sort()
        del self.keys[self.capacity:]
        if len(self.keys) == self.capacity:
            self.cut = self.keys[-1]


class _Partial(NamedTuple):
    """One bundle's (or a merge's) share: records seen, class counts, candidates per class (``None``: no class)."""

    count: int
    class_counts: dict[str, int]
    candidates: dict[str | None, list[bytes]]


class _SelectInBundle(beam.DoFn):
    """Serialized tf.Examples -> one ``_Partial`` per bundle (emitted in ``finish_bundle``)."""

    def __init__(self, capacity: int, seed: int, label_key: str | None, per_class: bool) -> None:
        super().__init__()
        self._capacity, self._seed, self._label_key, self._per_class = capacity, seed, label_key, per_class

    def setup(self) -> None:
        self._hasher = _hasher(self._seed)
        self._label = LabelReader(self._label_key) if self._label_key is not None else None

    def start_bundle(self) -> None:
        self._count = 0
        self._class_counts: collections.Counter[str] = collections.Counter()
        self._candidates: dict[str | None, _Candidates] = {}

    def process(self, record: bytes) -> None:
        self._count += 1
        cls = None
        if self._label is not None:
            cls = self._label(record)
            self._class_counts[cls] += 1
        if not self._per_class:
            cls = None
        candidates = self._candidates.get(cls)
        if candidates is None:
            candidates = self._candidates[cls] = _Candidates(self._capacity)
        hasher = self._hasher.copy()
        hasher.update(record)
        candidates.offer(hasher.digest() + record)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for candidates in self._candidates.values():
            candidates.shrink()
        partial = _Partial(self._count, dict(self._class_counts),
                           {cls: c.keys for cls, c in self._candidates.items()})
        yield WindowedValue(partial, GlobalWindow().max_timestamp(), [GlobalWindow()])


class _MergePartials(beam.CombineFn):
    """``_Partial``s -> one ``_Partial``: counts added, each class's ``capacity`` smallest keys, sorted."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self._capacity = capacity

    def create_accumulator(self) -> _Partial:
        return _Partial(0, {}, {})

    def add_input(self, accumulator: _Partial, partial: _Partial) -> _Partial:
        return self.merge_accumulators([accumulator, partial])

    def merge_accumulators(self, accumulators: Any) -> _Partial:
        count, class_counts = 0, collections.Counter()
        keys: dict[str | None, list[bytes]] = collections.defaultdict(list)
        for partial in accumulators:
            count += partial.count
            class_counts.update(partial.class_counts)
            for cls, more in partial.candidates.items():
                keys[cls].extend(more)
        return _Partial(count, dict(class_counts),
                        {cls: sorted(more)[: self._capacity] for cls, more in keys.items()})

    def extract_output(self, accumulator: _Partial) -> _Partial:
        return accumulator


def _records(keys: list[bytes]) -> list[bytes]:
    return [key[_DIGEST_SIZE:] for key in sorted(keys)]


def _count_classes(records: list[bytes], label_key: str | None) -> dict[str, int] | None:
    if label_key is None:
        return None
    return dict(sorted(collections.Counter(label_class(record, label_key) for record in records).items()))


def _to_sample(merged: _Partial, config: SamplingConfig) -> Sample:
    k, m = config.num_examples, config.num_search_examples
    if config.strategy == UNIFORM:
        keys = merged.candidates.get(None, [])
        chosen, search = keys[:k], keys[k:k + m]
    else:
        quotas = stratified_quotas(merged.class_counts, k)
        left = {cls: n - quotas[cls] for cls, n in merged.class_counts.items()}
        search_quotas = stratified_quotas(left, m, "num_search_examples") if m and sum(left.values()) else {}
        chosen, search = [], []
        for cls, keys in merged.candidates.items():
            quota = quotas[cls]
            chosen += keys[:quota]
            search += keys[quota:quota + search_quotas.get(cls, 0)]
    records, search_records = _records(chosen), _records(search)
    source_class_counts = dict(sorted(merged.class_counts.items())) if config.label_key is not None else None
    return Sample(records, merged.count, source_class_counts, _count_classes(records, config.label_key),
                  search_records, _count_classes(search_records, config.label_key) if m else None)


class SampleExamples(beam.PTransform):
    """PCollection of serialized tf.Examples -> PCollection of exactly one ``Sample``.

    One pass over the data; memory O(num_examples + num_search_examples) for ``uniform``, that times the number
    of classes for ``stratified`` (each class keeps what its quota could need until the class counts are known).
    With a label key, the classes are counted in the split and in each sample. An empty input gives a ``Sample``
    with no records.
    """

    def __init__(self, config: SamplingConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        config = self._config
        capacity = config.num_examples + config.num_search_examples
        return (records
                | "SelectInBundle" >> beam.ParDo(_SelectInBundle(capacity, config.seed, config.label_key,
                                                                 per_class=config.strategy == STRATIFIED))
                | "Merge" >> beam.CombineGlobally(_MergePartials(capacity))
                | "ToSample" >> beam.Map(_to_sample, config=config))
