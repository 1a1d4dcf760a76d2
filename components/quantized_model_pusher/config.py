"""The QuantizedModelPusher's parameters as one value, read from TFX's execution properties in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tfx.proto import pusher_pb2
from tfx.utils import proto_utils

from quantgate.components.quantized_model_pusher.spec import PUSH_DESTINATION_KEY


def base_directory(push_destination_json: str) -> str:
    """The filesystem base directory of a ``PushDestination`` (versions are unix timestamps, as ``AUTO`` means)."""
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(push_destination_json, destination)
    fs = destination.filesystem
    if destination.WhichOneof("destination") != "filesystem" or not fs.base_directory:
        raise ValueError("QuantizedModelPusher: push_destination needs filesystem.base_directory, e.g. "
                         "PushDestination(filesystem=PushDestination.Filesystem(base_directory='/srv/models'))")
    return fs.base_directory


@dataclass(frozen=True)
class QuantizedModelPusherConfig:
    """The component's parameters (see ``component.QuantizedModelPusher``)."""

    # The folder each pushed version goes under, as ``<base_directory>/<version>/`` (``publish.publish``).
    base_directory: str

    @classmethod
    def from_exec_properties(cls, exec_properties: Mapping[str, Any]) -> QuantizedModelPusherConfig:
        """The config of a component's execution properties.

        Raises:
          ValueError: ``push_destination`` is not a filesystem destination with a base directory (``base_directory``).
        """
        return cls(base_directory=base_directory(exec_properties[PUSH_DESTINATION_KEY]))
