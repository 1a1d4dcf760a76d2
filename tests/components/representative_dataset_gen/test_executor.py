"""The executor on real Examples artifacts: the demo run's, and small ones written per test."""

from __future__ import annotations

import functools
import logging
import os

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import Artifact, standard_artifacts

from quantgate.components.representative_dataset_gen import executor, storage
from quantgate.components.representative_dataset_gen.sampling import (
    STRATIFIED,
    SamplingConfig,
    label_class,
    rank,
)
from quantgate.components.types import RepresentativeDataset
from quantgate.pipelines.local_runner import direct_runner_args

from ..conftest import penguin_like_example
from .test_sampling import _flooded_class


def _pipeline(num_workers: int = 1, running_mode: str = "in_memory") -> beam.Pipeline:
    return beam.Pipeline(options=PipelineOptions(direct_runner_args(num_workers, running_mode)))


def _generate(examples: Artifact, output_uri: str, split: str = "train", **config: object) -> dict:
    return executor.generate(_pipeline, examples, output_uri, SamplingConfig(**config), split)


def _files(uri: str) -> list[str]:
    return sorted(os.listdir(uri)) if os.path.isdir(uri) else []


def test_same_sample_on_one_and_two_workers_and_on_rerun(demo_examples, tmp_path) -> None:
    config = SamplingConfig(num_examples=50, seed=11)
    outputs = {
        "one_worker": _pipeline,
        "rerun": _pipeline,
        "two_processes": functools.partial(_pipeline, 2, "multi_processing"),
    }
    manifests = {}
    for name, make_pipeline in outputs.items():
        manifests[name] = executor.generate(make_pipeline, demo_examples, str(tmp_path / name), config, "train")
    data = {name: (tmp_path / name / storage.DATA_FILENAME).read_bytes() for name in outputs}
    assert data["one_worker"] == data["rerun"] == data["two_processes"]
    assert manifests["one_worker"] == manifests["rerun"] == manifests["two_processes"]
    assert len(storage.read_examples(str(tmp_path / "one_worker"))) == 50


def test_another_seed_gives_another_sample(demo_examples, tmp_path) -> None:
    first = _generate(demo_examples, str(tmp_path / "a"), num_examples=50, seed=0)
    second = _generate(demo_examples, str(tmp_path / "b"), num_examples=50, seed=1)
    assert first["sha256"] != second["sha256"]
    assert set(storage.read_examples(str(tmp_path / "a"))) != set(storage.read_examples(str(tmp_path / "b")))


def test_manifest_describes_the_sample(demo_examples, tmp_path) -> None:
    uri = str(tmp_path / "out")
    manifest = _generate(demo_examples, uri, num_examples=60, strategy=STRATIFIED, label_key="species", seed=3)
    assert _files(uri) == [storage.DATA_FILENAME, storage.MANIFEST_FILENAME]  # no staging folder left
    assert manifest == storage.read_manifest(uri)
    assert manifest["sha256"] == storage.file_sha256(os.path.join(uri, storage.DATA_FILENAME))
    assert (manifest["num_examples"], manifest["num_examples_requested"]) == (60, 60)
    assert (manifest["strategy"], manifest["seed"], manifest["split"], manifest["label_key"]) == (
        "stratified", 3, "train", "species")
    assert (manifest["source_examples_id"], manifest["source_examples_uri"]) == (demo_examples.id, demo_examples.uri)

    records = storage.read_examples(uri)
    sampled = {cls: sum(label_class(r, "species") == cls for r in records) for cls in manifest["class_counts"]}
    assert sampled == manifest["class_counts"]
    assert sum(manifest["source_class_counts"].values()) == manifest["source_num_examples"]
    for cls, count in manifest["class_counts"].items():
        share = manifest["source_class_counts"][cls] / manifest["source_num_examples"]
        assert abs(count - 60 * share) < 1, (cls, count, share)


def test_fewer_examples_than_asked_takes_all_and_warns(make_examples, tmp_path, caplog) -> None:
    examples = make_examples({"train": [penguin_like_example(i, i % 3) for i in range(7)]})
    with caplog.at_level(logging.WARNING):
        manifest = _generate(examples, str(tmp_path / "out"), num_examples=300)
    assert (manifest["num_examples"], manifest["num_examples_requested"], manifest["source_num_examples"]) == (7, 300, 7)
    assert "fewer than num_examples=300" in caplog.text


def _assert_no_artifact(uri: str) -> None:
    assert _files(uri) == [], f"a failed run left {_files(uri)} in {uri}"


def test_an_empty_split_fails_and_writes_nothing(make_examples, tmp_path) -> None:
    examples = make_examples({"train": []})
    uri = str(tmp_path / "out")
    os.makedirs(uri)  # TFX creates the output folder before the executor runs
    with pytest.raises(Exception, match="split 'train' of Examples artifact .* has no examples"):
        _generate(examples, uri)
    _assert_no_artifact(uri)


def test_a_label_missing_from_the_examples_fails_and_writes_nothing(make_examples, tmp_path) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1), penguin_like_example(1, None)]})
    uri = str(tmp_path / "out")
    os.makedirs(uri)
    with pytest.raises(Exception, match="label_key 'species' is not present in an example"):
        _generate(examples, uri, strategy=STRATIFIED, label_key="species")
    _assert_no_artifact(uri)


@pytest.mark.parametrize(
    ("split", "schema_features", "message"),
    [
        ("test", ["species"], r"split 'test' is not in the Examples artifact .*\['train', 'eval'\]"),
        ("eval", ["species"], "is the eval split .* allow_eval_split=True"),
        ("train", ["bill_length_mm"], "label_key 'species' is not in the schema"),
    ],
)
def test_bad_inputs_fail_before_beam_and_write_nothing(make_examples, tmp_path, split: str,
                                                       schema_features: list[str], message: str) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1)], "eval": [penguin_like_example(1, 2)]})
    schema = schema_pb2.Schema()
    for name in schema_features:
        schema.feature.add(name=name)
    uri = str(tmp_path / "out")
    os.makedirs(uri)
    with pytest.raises(ValueError, match=message):
        executor.generate(_pipeline, examples, uri, SamplingConfig(label_key="species"), split, schema)
    _assert_no_artifact(uri)


def test_the_eval_split_can_be_allowed(make_examples, tmp_path) -> None:
    examples = make_examples({"train": [penguin_like_example(0, 1)], "eval": [penguin_like_example(1, 2)]})
    manifest = executor.generate(_pipeline, examples, str(tmp_path / "out"), SamplingConfig(), "eval",
                                 allow_eval_split=True)
    assert (manifest["split"], manifest["num_examples"]) == ("eval", 1)


def test_executor_do_publishes_properties(demo_run, demo_examples, tmp_path) -> None:
    schema = standard_artifacts.Schema()
    schema.set_mlmd_artifact(demo_run.output("SchemaGen", "schema"))
    output = RepresentativeDataset()
    output.uri = str(tmp_path / "out")
    os.makedirs(output.uri)
    context = executor.Executor.Context(beam_pipeline_args=direct_runner_args(), tmp_dir=str(tmp_path / "tmp"))
    executor.Executor(context).Do(
        {executor.EXAMPLES_KEY: [demo_examples], executor.SCHEMA_KEY: [schema]},
        {executor.REPRESENTATIVE_DATASET_KEY: [output]},
        {executor.SPLIT_KEY: "train", executor.NUM_EXAMPLES_KEY: 30, executor.STRATEGY_KEY: "stratified",
         executor.LABEL_KEY_KEY: "species", executor.SEED_KEY: 5, executor.ALLOW_EVAL_SPLIT_KEY: 0},
    )
    manifest = storage.read_manifest(output.uri)
    assert (output.get_int_custom_property("num_examples"), output.get_string_custom_property("strategy"),
            output.get_int_custom_property("seed"), output.get_string_custom_property("split")) == (
        30, "stratified", 5, "train")
    assert output.get_string_custom_property("sha256") == manifest["sha256"]
    assert output.get_string_custom_property("label_key") == "species"
    assert output.get_int_custom_property("source_examples_id") == demo_examples.id
    assert output.get_int_custom_property("num_examples_requested") == 30
    assert output.get_int_custom_property("source_num_examples") == manifest["source_num_examples"]


def test_search_sample_is_written_beside_and_disjoint(make_examples, tmp_path) -> None:
    examples = make_examples({"train": [penguin_like_example(i, i % 3) for i in range(90)]})
    uri, search_uri = str(tmp_path / "calibration"), str(tmp_path / "search")
    config = SamplingConfig(num_examples=30, strategy=STRATIFIED, label_key="species", seed=1, num_search_examples=24)
    manifest = executor.generate(_pipeline, examples, uri, config, "train", search_output_uri=search_uri,
                                 search_split="train")
    search = storage.read_manifest(search_uri)
    assert _files(search_uri) == [storage.DATA_FILENAME, storage.MANIFEST_FILENAME]
    assert (manifest["search_dataset_uri"], search["calibration_dataset_uri"]) == (search_uri, uri)
    assert (search["num_examples"], search["num_examples_requested"], search["source_examples_id"]) == (24, 24, 42)
    assert search["class_counts"] == {"0": 8, "1": 8, "2": 8}
    calibration, searched = storage.read_examples(uri), storage.read_examples(search_uri)
    assert len(calibration) == 30 and not set(calibration) & set(searched)
    alone = executor.generate(_pipeline, examples, str(tmp_path / "alone"),
                              SamplingConfig(num_examples=30, strategy=STRATIFIED, label_key="species", seed=1),
                              "train")
    assert alone["sha256"] == manifest["sha256"]  # asking for a search sample leaves the calibration one as it was


def test_no_examples_left_for_the_search_sample_fails_and_writes_nothing(make_examples, tmp_path) -> None:
    examples = make_examples({"train": [penguin_like_example(i, 0) for i in range(5)]})
    uri, search_uri = str(tmp_path / "calibration"), str(tmp_path / "search")
    os.makedirs(uri)
    os.makedirs(search_uri)
    with pytest.raises(Exception, match="all taken by num_examples=10: none are left for num_search_examples=3"):
        executor.generate(_pipeline, examples, uri, SamplingConfig(num_examples=10, num_search_examples=3),
                          "train", search_output_uri=search_uri, search_split="train")
    _assert_no_artifact(uri)
    _assert_no_artifact(search_uri)


def test_search_sample_comes_from_the_eval_split_by_default(make_examples, tmp_path) -> None:
    train = [penguin_like_example(i, i % 3) for i in range(60)]
    # Two eval records are copies of training records: the search sample never takes a calibration example.
    evaluation = [penguin_like_example(1000 + i, i % 3) for i in range(40)] + train[:2]
    examples = make_examples({"train": train, "eval": evaluation})
    uri, search_uri = str(tmp_path / "calibration"), str(tmp_path / "search")
    config = SamplingConfig(num_examples=60, strategy=STRATIFIED, label_key="species", seed=3, num_search_examples=21)
    manifest = executor.generate(_pipeline, examples, uri, config, "train", search_output_uri=search_uri)
    search = storage.read_manifest(search_uri)
    calibration, searched = storage.read_examples(uri), storage.read_examples(search_uri)
    assert (manifest["split"], search["split"]) == ("train", "eval")
    assert (manifest["search_dataset_uri"], search["calibration_dataset_uri"]) == (search_uri, uri)
    assert len(calibration) == 60 and set(calibration) == set(train)
    assert len(searched) == 21 and set(searched) <= set(evaluation) - set(train)
    assert search["source_num_examples"] == 40 and search["class_counts"] == {"0": 7, "1": 7, "2": 7}
    # The search sample is the eval split sampled alone with the same seed, less the calibration copies.
    alone = str(tmp_path / "alone")
    executor.generate(_pipeline, make_examples({"train": evaluation[:40]}), alone,
                      SamplingConfig(num_examples=21, strategy=STRATIFIED, label_key="species", seed=3), "train")
    assert storage.read_examples(alone) == searched


def test_a_missing_search_split_is_refused_naming_it(make_examples, tmp_path) -> None:
    examples = make_examples({"train": [penguin_like_example(i, 0) for i in range(20)]})
    uri, search_uri = str(tmp_path / "calibration"), str(tmp_path / "search")
    os.makedirs(uri)
    os.makedirs(search_uri)
    with pytest.raises(ValueError, match="'validation'"):
        executor.generate(_pipeline, examples, uri, SamplingConfig(num_examples=5, num_search_examples=3), "train",
                          search_output_uri=search_uri, search_split="validation")
    _assert_no_artifact(uri)
    _assert_no_artifact(search_uri)


def test_executor_do_publishes_both_samples(make_examples, tmp_path) -> None:
    examples = make_examples({"train": [penguin_like_example(i, i % 3) for i in range(40)]})
    outputs = {}
    for key in (executor.REPRESENTATIVE_DATASET_KEY, executor.SEARCH_DATASET_KEY):
        outputs[key] = RepresentativeDataset()
        outputs[key].uri = str(tmp_path / key)
        os.makedirs(outputs[key].uri)
    context = executor.Executor.Context(beam_pipeline_args=[], tmp_dir=str(tmp_path / "tmp"))
    executor.Executor(context).Do(
        {executor.EXAMPLES_KEY: [examples]}, {key: [artifact] for key, artifact in outputs.items()},
        {executor.SPLIT_KEY: "train", executor.NUM_EXAMPLES_KEY: 10, executor.STRATEGY_KEY: "uniform",
         executor.LABEL_KEY_KEY: None, executor.SEED_KEY: 5, executor.ALLOW_EVAL_SPLIT_KEY: 0,
         executor.NUM_SEARCH_EXAMPLES_KEY: 12, executor.SEARCH_SPLIT_KEY: "train"},
    )
    calibration, search = outputs[executor.REPRESENTATIVE_DATASET_KEY], outputs[executor.SEARCH_DATASET_KEY]
    assert (calibration.get_int_custom_property("num_examples"), search.get_int_custom_property("num_examples")) == (
        10, 12)
    assert search.get_int_custom_property("num_examples_requested") == 12
    assert calibration.get_string_custom_property("search_dataset_uri") == search.uri
    assert search.get_string_custom_property("calibration_dataset_uri") == calibration.uri
    assert search.get_string_custom_property("sha256") == storage.read_manifest(search.uri)["sha256"]


def test_a_class_that_falls_short_in_one_pass_is_sampled_again_and_the_sample_is_exact(make_examples, tmp_path,
                                                                                       caplog) -> None:
    records, flood = _flooded_class(seed=2)
    examples = make_examples({"train": records})
    uri = str(tmp_path / "out")
    with caplog.at_level(logging.WARNING):
        manifest = _generate(examples, uri, num_examples=2000, strategy=STRATIFIED, label_key="label", seed=2)
    assert "class(es) ['1'] fell short of their quotas" in caplog.text
    assert manifest["class_counts"] == {"0": 943, "1": 1057} and manifest["source_num_examples"] == len(records)
    sampled = storage.read_examples(uri)
    expected = sorted(records, key=lambda r: rank(r, 2))
    for cls, quota in manifest["class_counts"].items():
        of_class = [r for r in expected if label_class(r, "label") == cls][:quota]
        assert sorted(r for r in sampled if label_class(r, "label") == cls) == sorted(of_class)
    assert sampled == sorted(sampled, key=lambda r: rank(r, 2)) and flood in sampled
    assert _files(uri) == [storage.DATA_FILENAME, storage.MANIFEST_FILENAME]
