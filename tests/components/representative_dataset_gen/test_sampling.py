"""Pure functions and Beam transforms of sampling.py, on in-memory tf.Examples (no pipeline run)."""

from __future__ import annotations

import os
import pickle
import random
import tempfile

import apache_beam as beam
import mmh3
import pytest
from tensorflow.core.example import example_pb2

from quantgate.components.representative_dataset_gen.sampling import (
    RANK_HASH,
    STRATIFIED,
    UNIFORM,
    LabelReader,
    Sample,
    SampleExamples,
    SamplingConfig,
    _Candidates,
    label_class,
    rank,
    stratified_quotas,
)


def _example(index: int, label: int | bytes | None = None, key: str = "label") -> bytes:
    example = example_pb2.Example()
    example.features.feature["x"].float_list.value.append(float(index))
    if isinstance(label, int):
        example.features.feature[key].int64_list.value.append(label)
    elif isinstance(label, bytes):
        example.features.feature[key].bytes_list.value.append(label)
    return example.SerializeToString()


def _sample(records: list[bytes], config: SamplingConfig) -> Sample:
    """Runs SampleExamples on a DirectRunner and returns its single output.

    The output leaves the pipeline through a pickle file: Beam runs (and pickles) DoFns apart from this frame.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "samples.pickle")

        def save(samples: list[Sample]) -> None:
            with open(path, "wb") as f:
                pickle.dump(samples, f)

        with beam.Pipeline() as p:
            _ = p | beam.Create(records) | SampleExamples(config) | beam.combiners.ToList() | beam.Map(save)
        with open(path, "rb") as f:
            (sample,) = pickle.load(f)
    return sample


def test_rank_depends_on_seed_and_bytes_only() -> None:
    record = _example(1)
    assert rank(record, 0) == rank(record, 0)
    assert rank(record, 0) != rank(record, 1)
    assert rank(record, 0)[0] != rank(_example(2), 0)[0]
    assert rank(record, 2**63 - 1)[1] == record


def test_rank_is_the_documented_murmur3_of_the_seed_then_the_record() -> None:
    # The manifest names this hash (RANK_HASH): a changed rank would silently change every seed's sample.
    record = _example(3)
    for seed in (0, 7, 2**63 - 1):
        assert rank(record, seed)[0] == mmh3.mmh3_x64_128_digest(seed.to_bytes(8, "big") + record)
    assert "murmur3_x64_128" in RANK_HASH


def test_label_class_reads_int_and_bytes_labels() -> None:
    assert label_class(_example(0, 2), "label") == "2"
    assert label_class(_example(0, b"Adelie"), "label") == "Adelie"


def _labelled(label: object, key: str = "label", **more: object) -> bytes:
    example = example_pb2.Example()
    example.features.feature["x"].float_list.value.append(1.5)
    feature = example.features.feature[key]
    {int: feature.int64_list, float: feature.float_list, bytes: feature.bytes_list}[type(label)].value.append(label)
    for name, value in more.items():
        example.features.feature[name].bytes_list.value.append(value)
    return example.SerializeToString()


@pytest.mark.parametrize("label", [0, 2, -5, 2**40, -(2**63), 0.1, -3.5, b"Adelie", "\u00e9".encode() + b"\xff",
                                   b"x" * 300])
def test_label_reader_reads_what_label_class_reads(label: object) -> None:
    record = _labelled(label)
    assert LabelReader("label")(record) == label_class(record, "label")


def test_label_reader_is_not_fooled_by_the_key_inside_another_value() -> None:
    # The label's entry bytes also inside a string feature: two occurrences, so the record is parsed.
    record = _labelled(1, blob=_labelled(2))
    assert LabelReader("label")(record) == label_class(record, "label") == "1"


def test_an_entry_framed_otherwise_is_not_read_fast() -> None:
    reader = LabelReader("label")
    entry = reader.entry(_labelled(1))
    assert reader.entry_label(entry) == "1"
    wrong_tag, wrong_length = b"\x0b" + entry[1:], entry[:1] + bytes([entry[1] + 1]) + entry[2:]
    cut_short, bad_feature = entry[:-1], entry[:-3] + b"\xff\xff\xff"
    for framed_otherwise in (wrong_tag, wrong_length, cut_short, bad_feature, b"", entry[:4]):
        assert reader.entry_label(framed_otherwise) is None
    # the label's key (once) at the very start of a record: no tag and length before it to frame an entry
    feature = entry[len(b"\x0a\x0e\x0a\x05label\x12"):]
    for start in (b"", b"\x0e"):
        assert reader.entry(start + b"\x0a\x05label\x12" + feature) is None
    assert reader.entry(b"\x0a\x0e" + b"\x0a\x05label\x12" + feature) == entry


def test_label_reader_raises_label_class_errors() -> None:
    with pytest.raises(ValueError, match="label_key 'species' is not present"):
        LabelReader("species")(_labelled(1))
    example = example_pb2.Example()
    example.features.feature["label"].int64_list.value.extend([0, 1])
    with pytest.raises(ValueError, match="holds 2 values"):
        LabelReader("label")(example.SerializeToString())


def test_label_class_names_the_missing_key_and_the_features_present() -> None:
    with pytest.raises(ValueError, match=r"label_key 'species' is not present.*\['label', 'x'\]"):
        label_class(_example(0, 1), "species")


def test_label_class_refuses_a_multi_valued_label() -> None:
    example = example_pb2.Example()
    example.features.feature["label"].int64_list.value.extend([0, 1])
    with pytest.raises(ValueError, match="holds 2 values"):
        label_class(example.SerializeToString(), "label")


@pytest.mark.parametrize(
    ("counts", "k", "expected"),
    [
        ({"0": 99, "1": 50, "2": 82}, 50, {"0": 21, "1": 11, "2": 18}),  # largest remainder: 1 and 2 get the spare
        ({"a": 1000, "b": 1}, 10, {"a": 9, "b": 1}),  # a rare class still gets one
        ({"a": 5, "b": 3}, 300, {"a": 5, "b": 3}),  # fewer than asked: everything
        ({"a": 1, "b": 1, "c": 1, "d": 10}, 3, None),  # more classes than examples asked: refused
    ],
)
def test_stratified_quotas(counts: dict[str, int], k: int, expected: dict[str, int] | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="at least one example of each of the 4 classes"):
            stratified_quotas(counts, k)
        return
    quotas = stratified_quotas(counts, k)
    assert quotas == expected
    assert sum(quotas.values()) == min(k, sum(counts.values()))
    assert all(1 <= quotas[c] <= counts[c] for c in counts)


def test_stratified_quotas_always_add_up() -> None:
    for k in range(3, 60):
        quotas = stratified_quotas({"x": 37, "y": 2, "z": 11}, k)
        assert sum(quotas.values()) == min(k, 50), k
        assert all(q >= 1 for q in quotas.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_examples": 0}, "num_examples must be an integer >= 1, got 0"),
        ({"num_examples": True}, "num_examples must be an integer >= 1"),
        ({"strategy": "random"}, "strategy must be one of uniform, stratified, got 'random'"),
        ({"strategy": STRATIFIED}, "needs label_key"),
        ({"seed": -1}, "seed must be an integer in"),
        ({"seed": 2**63}, "seed must be an integer in"),
    ],
)
def test_sampling_config_refuses_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SamplingConfig(**kwargs)


def test_uniform_keeps_the_smallest_ranks_in_rank_order() -> None:
    records = [_example(i) for i in range(200)]
    sample = _sample(records, SamplingConfig(num_examples=20, seed=7))
    expected = sorted(records, key=lambda r: rank(r, 7))[:20]
    assert sample.records == expected
    assert sample.source_num_examples == 200
    assert sample.class_counts is None and sample.source_class_counts is None


def test_input_order_does_not_change_the_sample() -> None:
    records = [_example(i) for i in range(100)]
    config = SamplingConfig(num_examples=10, seed=3)
    assert _sample(records, config).records == _sample(records[::-1], config).records


def test_another_seed_gives_another_sample() -> None:
    records = [_example(i) for i in range(100)]
    first = _sample(records, SamplingConfig(num_examples=10, seed=0)).records
    second = _sample(records, SamplingConfig(num_examples=10, seed=1)).records
    assert set(first) != set(second)


def test_fewer_records_than_asked_takes_them_all() -> None:
    records = [_example(i) for i in range(5)]
    sample = _sample(records, SamplingConfig(num_examples=50))
    assert sorted(sample.records) == sorted(records)
    assert sample.source_num_examples == 5


def test_empty_input_gives_an_empty_sample() -> None:
    sample = _sample([], SamplingConfig(num_examples=5))
    assert sample.records == [] and sample.source_num_examples == 0


def test_stratified_meets_the_quotas_with_each_class_smallest_ranks() -> None:
    labels = [0] * 60 + [1] * 30 + [2] * 10
    records = [_example(i, label) for i, label in enumerate(labels)]
    sample = _sample(records, SamplingConfig(num_examples=10, strategy=STRATIFIED, label_key="label", seed=5))
    assert sample.source_class_counts == {"0": 60, "1": 30, "2": 10}
    assert sample.class_counts == {"0": 6, "1": 3, "2": 1}
    assert sample.records == sorted(sample.records, key=lambda r: rank(r, 5))
    for cls, quota in sample.class_counts.items():
        of_class = [r for r in records if label_class(r, "label") == cls]
        assert set(sorted(of_class, key=lambda r: rank(r, 5))[:quota]) <= set(sample.records)


def test_uniform_with_a_label_key_counts_classes() -> None:
    records = [_example(i, i % 2) for i in range(40)]
    sample = _sample(records, SamplingConfig(num_examples=8, strategy=UNIFORM, label_key="label"))
    assert sample.source_class_counts == {"0": 20, "1": 20}
    assert sum(sample.class_counts.values()) == 8


def test_missing_label_fails_the_pipeline_with_the_key_named() -> None:
    records = [_example(0, 1), _example(1, None)]
    with pytest.raises(Exception, match="label_key 'label' is not present"):
        _sample(records, SamplingConfig(num_examples=2, strategy=STRATIFIED, label_key="label"))


def test_multi_valued_label_fails_the_pipeline_with_the_count() -> None:
    example = example_pb2.Example()
    example.features.feature["label"].int64_list.value.extend([0, 1])
    records = [_example(0, 1), example.SerializeToString()]
    with pytest.raises(Exception, match="label_key 'label' holds 2 values"):
        _sample(records, SamplingConfig(num_examples=2, strategy=STRATIFIED, label_key="label"))


def test_search_sample_is_the_next_ranks_and_leaves_the_calibration_sample_unchanged() -> None:
    records = [_example(i) for i in range(200)]
    alone = _sample(records, SamplingConfig(num_examples=20, seed=7))
    both = _sample(records, SamplingConfig(num_examples=20, seed=7, num_search_examples=30))
    ranked = sorted(records, key=lambda r: rank(r, 7))
    assert both.records == alone.records == ranked[:20]
    assert both.search_records == ranked[20:50]
    assert alone.search_records == [] and alone.search_class_counts is None


def test_search_sample_takes_what_the_calibration_sample_leaves() -> None:
    records = [_example(i) for i in range(25)]
    sample = _sample(records, SamplingConfig(num_examples=20, num_search_examples=30))
    assert len(sample.records) == 20 and len(sample.search_records) == 5
    assert sorted(sample.records + sample.search_records) == sorted(records)


def test_stratified_search_sample_is_disjoint_and_stratified_too() -> None:
    labels = [0] * 120 + [1] * 60 + [2] * 20
    records = [_example(i, label) for i, label in enumerate(labels)]
    config = SamplingConfig(num_examples=10, strategy=STRATIFIED, label_key="label", seed=5, num_search_examples=20)
    sample = _sample(records, config)
    alone = _sample(records, SamplingConfig(num_examples=10, strategy=STRATIFIED, label_key="label", seed=5))
    assert sample.records == alone.records
    assert not set(sample.records) & set(sample.search_records)
    assert sample.class_counts == {"0": 6, "1": 3, "2": 1}
    assert sample.search_class_counts == {"0": 12, "1": 6, "2": 2}
    assert sample.search_records == sorted(sample.search_records, key=lambda r: rank(r, 5))
    for cls, quota in sample.search_class_counts.items():
        of_class = sorted((r for r in records if label_class(r, "label") == cls), key=lambda r: rank(r, 5))
        calibration_quota = sample.class_counts[cls]
        assert set(of_class[calibration_quota:calibration_quota + quota]) == {
            r for r in sample.search_records if label_class(r, "label") == cls}


def test_the_candidate_cut_keeps_each_class_smallest_ranks() -> None:
    # 1000 records a class against a capacity of 16: the candidate lists are cut many times.
    records = [_example(i, i % 3) for i in range(3000)]
    config = SamplingConfig(num_examples=7, strategy=STRATIFIED, label_key="label", seed=2, num_search_examples=9)
    ranked = sorted(records, key=lambda r: rank(r, 2))
    sample = _sample(records, config)
    assert sample.records == _sample(records[::-1], config).records
    for cls in "012":
        of_class = [r for r in ranked if label_class(r, "label") == cls]
        assert {r for r in sample.records if label_class(r, "label") == cls} <= set(of_class[:7])


def test_num_search_examples_is_checked() -> None:
    with pytest.raises(ValueError, match="num_search_examples must be an integer >= 0, got -1"):
        SamplingConfig(num_search_examples=-1)


def test_stratified_quotas_name_the_search_parameter() -> None:
    with pytest.raises(ValueError, match="more than num_search_examples=2; raise num_search_examples"):
        stratified_quotas({"a": 5, "b": 5, "c": 5}, 2, "num_search_examples")


def test_partial_coder_round_trips_and_merging_keeps_the_smallest_keys() -> None:
    from quantgate.components.representative_dataset_gen.sampling import _DIGEST_SIZE as DIGEST
    from quantgate.components.representative_dataset_gen.sampling import _merge_into, _Partial, _PartialCoder

    coder = _PartialCoder()
    keys = sorted(rank(_example(i), 0)[0] + _example(i) for i in range(50))
    partial = _Partial(50, {"0": 30, "1": 20}, {"0": keys[:30:2], "1": keys[1:30:2], None: [b"", b"x" * 300]},
                       {"1": keys[29]})
    decoded = coder.decode(coder.encode(partial))
    assert decoded == partial
    # Decoded keys are views on the encoded bytes; re-encoded (as Beam's local shuffle does) they are the same.
    assert coder.decode(coder.encode(decoded)) == partial
    # The keys travel compressed (tf.Examples repeat their feature names); decoded, they stay so until read.
    many = _Partial(50, {}, {None: keys})
    assert len(coder.encode(many)) < sum(map(len, keys))
    assert coder.encode(coder.decode(coder.encode(many))) == coder.encode(many)
    packed, kept = decoded.candidates["0"], keys[:30:2]
    assert list(packed[2:5]) == kept[2:5] and packed[2:5].records() == [key[DIGEST:] for key in kept[2:5]]
    assert len(packed[5:]) == len(kept) - 5 and packed[20:] == []
    assert pickle.loads(pickle.dumps(packed[2:5])) == kept[2:5]  # read keys hold a memoryview; pickling still works
    with pytest.raises(TypeError, match="contiguous slices only"):
        packed[::2]
    assert coder.decode(coder.encode(_Partial(0, {}, {}))) == _Partial(0, {}, {})
    merged = _Partial(0, {}, {})
    for share in (_Partial(25, {}, {None: keys[::2]}), _Partial(25, {}, {None: keys[1::2]})):
        before = list(share.candidates[None])
        _merge_into(merged, share, 10)
        assert share.candidates[None] == before  # the other accumulator is left as it was
    assert merged == _Partial(50, {}, {None: keys[:10]}, {None: keys[9]})
    merged = _Partial(0, {}, {})  # decoded shares merge as the lists do
    for share in (_Partial(25, {}, {None: keys[::2]}), _Partial(25, {}, {None: keys[1::2]})):
        _merge_into(merged, coder.decode(coder.encode(share)), 10)
    assert merged == _Partial(50, {}, {None: keys[:10]}, {None: keys[9]})


def test_merging_keeps_only_the_keys_below_both_cuts() -> None:
    from quantgate.components.representative_dataset_gen.sampling import _merge_into, _Partial

    keys = sorted(rank(_example(i), 0)[0] + _example(i) for i in range(40))
    # One share holds all its keys below keys[10] (the cut), the other all of its own: above keys[10] the first
    # share's keys are unknown, so the merge cannot hold any of the second's there either.
    cut_low = _Partial(20, {"a": 20}, {"a": keys[0:11:2]}, {"a": keys[10]})
    whole = _Partial(20, {"a": 20}, {"a": keys[1::2]})
    merged = _Partial(0, {}, {})
    for share in (whole, cut_low):
        _merge_into(merged, share, 100)
    assert merged == _Partial(40, {"a": 40}, {"a": [key for key in keys[:11] if key in keys[0:11:2] + keys[1::2]]},
                              {"a": keys[10]})


def test_records_read_fast_and_parsed_count_and_rank_as_one_class() -> None:
    # Class "1" arrives three ways: an int64 label and a bytes label (two label encodings, read fast) and, for a
    # third of the records, a label whose entry also sits inside another value (the record is parsed).
    records = []
    for i in range(90):
        label = [1, b"1", 1][i % 3] if i % 2 else 0
        records.append(_labelled(label, idx=str(i).encode(), **({"blob": _labelled(2)} if i % 3 == 2 else {})))
    config = SamplingConfig(num_examples=12, strategy=STRATIFIED, label_key="label", seed=3)
    sample = _sample(records, config)
    assert sample.source_class_counts == {"0": 45, "1": 45}
    assert sample.class_counts == {"0": 6, "1": 6}
    for cls in "01":
        of_class = sorted((r for r in records if label_class(r, "label") == cls), key=lambda r: rank(r, 3))
        assert {r for r in sample.records if label_class(r, "label") == cls} == set(of_class[:6])


def test_a_digest_equal_to_the_cut_is_decided_by_the_record() -> None:
    candidates = _Candidates(2)
    digest = b"\x10" * 16
    for record in (b"b", b"d", b"c"):
        candidates.offer(digest, record)
    candidates.shrink()
    assert candidates.keys == [digest + b"b", digest + b"c"] and candidates.cut == digest + b"c"
    candidates.offer(digest, b"e")  # same digest, larger record: above the cut
    candidates.offer(b"\x11" * 16, b"a")  # larger digest
    candidates.offer(digest, b"a")  # same digest, smaller record
    candidates.offer(b"\x0f" * 16, b"z")  # smaller digest
    candidates.shrink()
    assert candidates.keys == [b"\x0f" * 16 + b"z", digest + b"a"]


def _sample_in_bundles(bundles: list[list[bytes]], config: SamplingConfig, full_class_capacity: bool = False) -> Sample:
    """What SampleExamples computes, bundle by bundle (each partial through its coder), merged, without a runner."""
    from quantgate.components.representative_dataset_gen.sampling import (
        _MergePartials,
        _PartialCoder,
        _SelectInBundle,
    )

    capacity = config.num_examples + config.num_search_examples
    combine, coder = _MergePartials(capacity, config), _PartialCoder()
    accumulators = []
    for bundle in bundles:
        select = _SelectInBundle(capacity, config.seed, config.label_key, per_class=config.strategy == STRATIFIED,
                                 full_class_capacity=full_class_capacity)
        select.setup()
        select.start_bundle()
        for record in bundle:
            select.process(record)
        (partial,) = select.finish_bundle()
        accumulators.append(combine.add_input(combine.create_accumulator(), coder.decode(coder.encode(partial.value))))
    return combine.extract_output(combine.merge_accumulators(accumulators))


def _classed(n: int, weights: dict[int, float], rng: random.Random) -> list[bytes]:
    labels = rng.choices(list(weights), weights=list(weights.values()), k=n)
    return [_labelled(label, idx=str(i).encode()) for i, label in enumerate(labels)]


@pytest.mark.parametrize(("order", "bundle_sizes", "k", "search"), [
    ("shuffled", [6000], 5, 0),
    ("shuffled", [6000], 400, 30),
    ("by_class", [6000], 5, 30),
    ("by_class", [6000], 1500, 0),
    ("reversed_by_class", [500, 4000, 1500], 50, 0),
    ("by_class", [100] * 60, 5, 0),
    ("shuffled", [3000, 17, 2983], 800, 200),
])
def test_each_class_keeping_its_share_samples_what_keeping_everything_would(order, bundle_sizes, k, search) -> None:
    rng = random.Random(len(bundle_sizes) * 1000 + k)
    # 3 large classes, a small one and one of 2 records (its quota is the floor of one)
    records = _classed(5998, {0: 6, 1: 3, 2: 1, 3: 0.05}, rng) + [_labelled(9, idx=b"a"), _labelled(9, idx=b"b")]
    if order == "shuffled":
        rng.shuffle(records)
    else:
        records.sort(key=lambda r: label_class(r, "label"), reverse=order == "reversed_by_class")
    bundles, at = [], 0
    for size in bundle_sizes:
        bundles.append(records[at:at + size])
        at += size
    config = SamplingConfig(num_examples=k, strategy=STRATIFIED, label_key="label", seed=4, num_search_examples=search)
    shared = _sample_in_bundles(bundles, config)
    assert shared.shortfall == {}
    assert shared == _sample_in_bundles(bundles, config, full_class_capacity=True)
    assert len(shared.records) == k and len(shared.search_records) == search


def _flooded_class(seed: int) -> tuple[list[bytes], bytes]:
    """10,000 records of class 0, then 1,200 of class 1, then 10,000 copies of one class-1 record ranked at the
    middle (a hash between 1/2 and 5/8): class 1 is cut while it is a tenth of the records seen, at about 0.3 of the
    hash range, and its copies all fall above its cut, though its quota takes a few hundred of them."""
    flood = next(r for r in (_labelled(1, idx=b"copy%d" % i) for i in range(100))
                 if 0x80 <= rank(r, seed)[0][0] < 0xA0)
    records = [_labelled(0, idx=str(i).encode()) for i in range(10_000)]
    records += [_labelled(1, idx=str(i).encode()) for i in range(1_200)] + [flood] * 10_000
    return records, flood


def test_a_class_flooded_by_copies_of_one_record_falls_short_and_keeping_everything_samples_it() -> None:
    records, flood = _flooded_class(seed=2)
    config = SamplingConfig(num_examples=2000, strategy=STRATIFIED, label_key="label", seed=2)
    short = _sample_in_bundles([records], config)
    assert set(short.shortfall) == {"1"} and short.shortfall["1"] > 0
    assert short.records == [] and short.source_num_examples == len(records)
    sample = _sample_in_bundles([records], config, full_class_capacity=True)
    assert sample.shortfall == {} and sample.class_counts == {"0": 943, "1": 1057}
    for cls, quota in sample.class_counts.items():
        of_class = sorted((r for r in records if label_class(r, "label") == cls), key=lambda r: rank(r, 2))
        assert sorted((r for r in sample.records if label_class(r, "label") == cls), key=lambda r: rank(r, 2)) == (
            of_class[:quota])
    assert sample.records.count(flood) > 100
