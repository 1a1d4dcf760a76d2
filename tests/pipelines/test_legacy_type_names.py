"""Stores written before the ``quantgate`` import name hold ``components.<Type>`` artifact types: the lineage CLI
reads them as today's ``quantgate.<Type>``."""

from __future__ import annotations

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from quantgate.components.shared import properties
from quantgate.pipelines.lineage.events import Reader
from quantgate.pipelines.lineage.render import SHOWN_PROPERTIES


def _store_with(type_name: str, tmp_path) -> tuple[metadata_store.MetadataStore, metadata_store_pb2.Artifact]:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "metadata.sqlite")
    store = metadata_store.MetadataStore(config)
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name=type_name))
    artifact = metadata_store_pb2.Artifact(type_id=type_id, uri="/old/sample")
    artifact.custom_properties[properties.SEED].int_value = 7
    (artifact_id,) = store.put_artifacts([artifact])
    (stored,) = store.get_artifacts_by_id([artifact_id])
    return store, stored


def test_an_old_type_name_reads_as_today_s(tmp_path) -> None:
    store, artifact = _store_with("components.RepresentativeDataset", tmp_path)
    info = Reader(store).artifact_info(artifact)
    assert info.type == properties.REPRESENTATIVE_DATASET_TYPE == "quantgate.RepresentativeDataset"
    assert info.properties[properties.SEED] == 7
    assert info.type in SHOWN_PROPERTIES  # so the text rendering shows its seed, size and strategy again


def test_today_s_and_other_type_names_are_kept(tmp_path) -> None:
    store, artifact = _store_with("Examples", tmp_path)
    assert Reader(store).artifact_type(artifact) == "Examples"
    assert set(properties.LEGACY_TYPE_NAMES.values()) == {properties.REPRESENTATIVE_DATASET_TYPE,
                                                          properties.QUANTIZATION_EVALUATION_TYPE}
