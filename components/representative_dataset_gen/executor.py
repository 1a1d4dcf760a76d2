"""RepresentativeDatasetGen's executor: checks the inputs, samples the split with Beam, publishes atomically.

``generate_dataset`` is the whole run on artifacts and one ``config.RepresentativeDatasetGenConfig``;
``Executor.Do`` only unpacks TFX's dicts. ``generate`` is the same work on uris.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.types import Artifact, artifact_utils
from tfx.utils import io_utils
from tfx_bsl.public import tfxio

from quantgate.components.representative_dataset_gen import storage
from quantgate.components.representative_dataset_gen.config import RepresentativeDatasetGenConfig
from quantgate.components.representative_dataset_gen.sampling import (
    RANK_HASH,
    Sample,
    SampleExamples,
    SamplingConfig,
)

# The execution-property keys stay importable from here (F401: re-exported; RepresentativeDatasetGenConfig reads
# them).
from quantgate.components.representative_dataset_gen.spec import (
    ALLOW_EVAL_SPLIT_KEY,  # noqa: F401
    EXAMPLES_KEY,
    LABEL_KEY_KEY,  # noqa: F401
    NUM_EXAMPLES_KEY,  # noqa: F401
    NUM_SEARCH_EXAMPLES_KEY,  # noqa: F401
    REPRESENTATIVE_DATASET_KEY,
    SCHEMA_KEY,
    SEARCH_DATASET_KEY,
    SEARCH_SPLIT_KEY,  # noqa: F401
    SEED_KEY,  # noqa: F401
    SPLIT_KEY,  # noqa: F401
    STRATEGY_KEY,  # noqa: F401
)
from quantgate.components.representative_dataset_gen.validation import (
    EVAL_SPLIT,
    check_label_key,
    check_split,
)
from quantgate.components.shared import properties
from quantgate.components.shared.staged_output import staged_output

_TELEMETRY = ["quantgate", "RepresentativeDatasetGen"]
# Written into the staging folder instead of the sample when a stratified class fell short (``Sample.shortfall``).
_SHORTFALL_FILENAME = "shortfall.json"


class Executor(base_beam_executor.BaseBeamExecutor):
    """Samples ``split`` of ``examples`` into a ``RepresentativeDataset`` (see ``generate_dataset``)."""

    def Do(self, input_dict: dict[str, list[Artifact]], output_dict: dict[str, list[Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        config = RepresentativeDatasetGenConfig.from_exec_properties(exec_properties)
        generate_dataset(
            self._make_beam_pipeline,
            examples=artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY]),
            representative_dataset=artifact_utils.get_single_instance(output_dict[REPRESENTATIVE_DATASET_KEY]),
            config=config,
            schema=read_schema(input_dict.get(SCHEMA_KEY)),
            # Declared only when num_search_examples > 0 (spec.py): read only then.
            search_dataset=(artifact_utils.get_single_instance(output_dict[SEARCH_DATASET_KEY])
                            if config.sampling.num_search_examples else None),
        )


def generate_dataset(make_pipeline: Callable[[], beam.Pipeline], examples: Artifact,
                     representative_dataset: Artifact, config: RepresentativeDatasetGenConfig, *,
                     schema: schema_pb2.Schema | None = None, search_dataset: Artifact | None = None
                     ) -> dict[str, Any]:
    """The whole run on artifacts: samples ``config.split`` of ``examples`` into ``representative_dataset`` (and,
    with ``config.sampling.num_search_examples``, the search sample into ``search_dataset``; see ``generate``) and
    copies each manifest's numbers onto its artifact. Returns the calibration sample's manifest."""
    manifest = generate(
        make_pipeline,
        examples=examples,
        output_uri=representative_dataset.uri,
        config=config.sampling,
        split=config.split,
        schema=schema,
        allow_eval_split=config.allow_eval_split,
        search_output_uri=search_dataset.uri if search_dataset else None,
        search_split=config.search_split,
    )
    set_artifact_properties(representative_dataset, manifest)
    if search_dataset:
        set_artifact_properties(search_dataset, storage.read_manifest(search_dataset.uri))
    return manifest


def read_schema(schema_artifacts: list[Artifact] | None) -> schema_pb2.Schema | None:
    """The schema of an optional Schema channel (``None`` when it is not wired)."""
    if not schema_artifacts:
        return None
    return io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(schema_artifacts)))


def generate(make_pipeline: Callable[[], beam.Pipeline], examples: Artifact, output_uri: str, config: SamplingConfig, split: str,
             schema: schema_pb2.Schema | None = None, allow_eval_split: bool = False,
             search_output_uri: str | None = None, search_split: str = EVAL_SPLIT) -> dict[str, Any]:
    """Samples ``split`` of ``examples`` into ``output_uri`` with a pipeline of ``make_pipeline``; returns the manifest.

    With ``config.num_search_examples`` the search sample goes to ``search_output_uri`` (same layout; read its
    manifest with ``storage.read_manifest``), and each manifest names the other's uri. The search sample comes from
    ``search_split``: by default the eval split, examples the model did not train on (the QuantizationEvaluator,
    given the search sample, leaves them out of its gate); a second pass with the same seed, which skips any record
    of the calibration sample. When ``search_split`` is ``split`` it is the ``num_search_examples`` ranks after the
    calibration sample's, in the same pass. The inputs are checked before Beam starts. Each sample is written into
    a staging folder and moved into place (manifest last) only when both are complete (``staged_output``). In the
    rare case that a stratified class falls short of its quotas in the one pass (``SampleExamples``), the split is
    sampled again, with a second pipeline of ``make_pipeline`` and each class keeping all the examples it needs
    (which cannot fall short): a second pass, logged as a warning.
    """
    if bool(config.num_search_examples) != bool(search_output_uri):
        raise ValueError("RepresentativeDatasetGen: num_search_examples > 0 needs search_output_uri, and only then")
    patterns = check_split(examples, split, allow_eval_split)
    own_search_pass = bool(search_output_uri) and search_split != split
    # The search sample is scored, never fitted to: the eval split is where it belongs by default.
    search_patterns = check_split(examples, search_split, allow_eval_split=True) if own_search_pass else None
    check_label_key(schema, config.label_key)
    source = {
        properties.SPLIT: split,
        properties.STRATEGY: config.strategy,
        properties.SEED: config.seed,
        properties.LABEL_KEY: config.label_key,
        properties.NUM_EXAMPLES_REQUESTED: config.num_examples,
        properties.SOURCE_EXAMPLES_ID: examples.id,
        "source_examples_uri": examples.uri,
        "rank_hash": RANK_HASH,
    }
    logging.info("RepresentativeDatasetGen: sampling %d examples (%s, seed %d) from split %r of %s",
                 config.num_examples, config.strategy, config.seed, split, examples.uri)
    started = time.monotonic()
    files = (properties.REPRESENTATIVE_DATA_FILENAME, properties.REPRESENTATIVE_MANIFEST_FILENAME)
    with contextlib.ExitStack() as stack:
        staging = stack.enter_context(staged_output(output_uri, files))
        search_staging = stack.enter_context(staged_output(search_output_uri, files)) if search_output_uri else None
        if own_search_pass:
            passes = _sample_into(make_pipeline, patterns, dataclasses.replace(config, num_search_examples=0),
                                  staging, None, {**source, properties.SEARCH_DATASET_URI: search_output_uri},
                                  examples.uri, (output_uri, None))
            search_config = dataclasses.replace(config, num_examples=config.num_search_examples, num_search_examples=0)
            logging.info("RepresentativeDatasetGen: sampling %d search examples (%s, seed %d) from split %r of %s, "
                         "none of them in the calibration sample", search_config.num_examples, config.strategy,
                         config.seed, search_split, examples.uri)
            passes += _sample_into(make_pipeline, search_patterns, search_config, search_staging, None,
                                   {**source, properties.SPLIT: search_split,
                                    properties.NUM_EXAMPLES_REQUESTED: search_config.num_examples,
                                    properties.CALIBRATION_DATASET_URI: output_uri},
                                   examples.uri, (search_output_uri, None),
                                   exclude=frozenset(storage.read_examples(staging)))
        else:
            passes = _sample_into(make_pipeline, patterns, config, staging, search_staging, source, examples.uri,
                                  (output_uri, search_output_uri))
        manifest = storage.read_manifest(staging)
    elapsed = time.monotonic() - started
    logging.info("RepresentativeDatasetGen: sampled %d of %d examples of split %r (%s, seed %d) in %.1f s, "
                 "%.0f examples/s read (%d pass(es))", manifest["num_examples"], manifest["source_num_examples"], split,
                 config.strategy, config.seed, elapsed, passes * manifest["source_num_examples"] / max(elapsed, 1e-9),
                 passes)
    if manifest["num_examples"] < config.num_examples:
        logging.warning("RepresentativeDatasetGen: split %r of %s has %d examples, fewer than num_examples=%d: "
                        "took them all", split, examples.uri, manifest["num_examples"], config.num_examples)
    if search_output_uri:
        searched = storage.read_manifest(search_output_uri)
        logging.log(logging.WARNING if searched[properties.NUM_EXAMPLES] < config.num_search_examples else logging.INFO,
                    "RepresentativeDatasetGen: search sample of %d of the %d examples of split %r "
                    "(num_search_examples=%d), disjoint from the calibration sample, in %s",
                    searched[properties.NUM_EXAMPLES], searched[properties.SOURCE_NUM_EXAMPLES],
                    searched[properties.SPLIT], config.num_search_examples, search_output_uri)
    return manifest


def _sample_into(make_pipeline: Callable[[], beam.Pipeline], patterns: list[str], config: SamplingConfig,
                 staging: str, search_staging: str | None, manifest: dict[str, Any], examples_uri: str,
                 output_uris: tuple[str, str | None], exclude: frozenset[bytes] = frozenset()) -> int:
    """Samples ``patterns`` (less the records in ``exclude``) into ``staging`` (and ``search_staging``); returns
    the number of passes it took (2 when a stratified class fell short in the first)."""
    split = manifest[properties.SPLIT]
    write = functools.partial(beam.Map, _write_samples, staging_dir=staging, search_staging_dir=search_staging,
                              manifest=manifest, examples_uri=examples_uri, output_uris=output_uris, config=config)
    passes = 1
    shortfall = _sample_split(make_pipeline(), patterns, SampleExamples(config), write, staging, exclude)
    if shortfall:
        logging.warning("RepresentativeDatasetGen: in one pass, the candidates of class(es) %s fell short of their "
                        "quotas by %s (many copies of one record in a class do this); sampling split %r again, "
                        "each class keeping %d candidates", sorted(shortfall), shortfall, split,
                        config.num_examples + config.num_search_examples)
        passes = 2
        if _sample_split(make_pipeline(), patterns, SampleExamples(config, full_class_capacity=True), write, staging,
                         exclude):
            raise RuntimeError("RepresentativeDatasetGen: internal error, full candidate lists fell short of the "
                               f"quotas of split {split!r}; please report it")
    if not fileio.exists(storage.manifest_path(staging)):  # no Sample at all: a runner ran no bundle
        raise _empty_split(split, examples_uri)
    return passes


def _shortfall_path(staging_dir: str) -> str:
    return os.path.join(staging_dir, _SHORTFALL_FILENAME)


def _sample_split(pipeline: beam.Pipeline, patterns: list[str], sample: SampleExamples,
                  write: Callable[[], beam.PTransform], staging: str, exclude: frozenset[bytes]) -> dict[str, int]:
    """Runs ``pipeline`` to sample (all records but those in ``exclude``) and write into ``staging``; returns the
    ``Sample.shortfall`` (then, nothing is written but the shortfall's file, which this removes)."""
    with pipeline as p:
        records = p | "ReadSplit" >> tfxio.TFExampleRecord(patterns, telemetry_descriptors=_TELEMETRY).RawRecordBeamSource()
        if exclude:
            records = records | "ExcludeCalibration" >> beam.Filter(_not_in, exclude)
        _ = (records
             | "Sample" >> sample
             | "Write" >> write())
    shortfall_path = _shortfall_path(staging)
    if not fileio.exists(shortfall_path):
        return {}
    with fileio.open(shortfall_path, "r") as f:
        shortfall = json.load(f)
    fileio.remove(shortfall_path)
    return shortfall


def _not_in(record: bytes, excluded: frozenset[bytes]) -> bool:
    return record not in excluded


def _empty_split(split: str, examples_uri: str) -> ValueError:
    return ValueError(f"RepresentativeDatasetGen: split {split!r} of Examples artifact {examples_uri!r} has no "
                      "examples; pass a split that has examples")


def _write_samples(sample: Sample, staging_dir: str, search_staging_dir: str | None, manifest: dict[str, Any],
                   examples_uri: str, output_uris: tuple[str, str | None], config: SamplingConfig) -> None:
    if sample.shortfall:
        with fileio.open(_shortfall_path(staging_dir), "w") as f:
            json.dump(sample.shortfall, f)
        return
    if not sample.records:
        raise _empty_split(manifest["split"], examples_uri)
    output_uri, search_output_uri = output_uris
    common = {**manifest, properties.SOURCE_NUM_EXAMPLES: sample.source_num_examples,
              "source_class_counts": sample.source_class_counts}
    calibration = {**common, properties.NUM_EXAMPLES: len(sample.records), "class_counts": sample.class_counts}
    if search_staging_dir is None:
        storage.write_representative_dataset(staging_dir, sample.records, calibration)
        return
    if not sample.search_records:
        raise ValueError(
            f"RepresentativeDatasetGen: split {manifest['split']!r} of Examples artifact {examples_uri!r} has "
            f"{sample.source_num_examples} examples, all taken by num_examples={config.num_examples}: none are left "
            f"for num_search_examples={config.num_search_examples}; lower num_examples or num_search_examples"
        )
    storage.write_representative_dataset(staging_dir, sample.records,
                                         {**calibration, properties.SEARCH_DATASET_URI: search_output_uri})
    storage.write_representative_dataset(search_staging_dir, sample.search_records, {
        **common,
        properties.NUM_EXAMPLES_REQUESTED: config.num_search_examples,
        properties.NUM_EXAMPLES: len(sample.search_records),
        "class_counts": sample.search_class_counts,
        properties.CALIBRATION_DATASET_URI: output_uri,
    })


def set_artifact_properties(artifact: Artifact, manifest: dict[str, Any]) -> None:
    """Copies the manifest's numbers onto the artifact, where MLMD and the Kubeflow / Vertex UIs show them."""
    for name in (properties.NUM_EXAMPLES, properties.SEED, properties.NUM_EXAMPLES_REQUESTED,
                 properties.SOURCE_NUM_EXAMPLES, properties.SOURCE_EXAMPLES_ID):
        artifact.set_int_custom_property(name, manifest[name])
    for name in (properties.STRATEGY, properties.SPLIT, properties.SHA256):
        artifact.set_string_custom_property(name, manifest[name])
    for name in (properties.SEARCH_DATASET_URI, properties.CALIBRATION_DATASET_URI):
        if name in manifest:
            artifact.set_string_custom_property(name, manifest[name])
    if manifest[properties.LABEL_KEY]:
        artifact.set_string_custom_property(properties.LABEL_KEY, manifest[properties.LABEL_KEY])
