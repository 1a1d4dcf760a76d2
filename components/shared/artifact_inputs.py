"""What every executor's ``Do`` does with an optional channel: its one artifact, or ``None`` when not wired."""

from __future__ import annotations

from tfx.types import Artifact, artifact_utils


def optional_single(artifacts: dict[str, list[Artifact]], key: str) -> Artifact | None:
    """The one artifact under ``key`` (an optional input or output), ``None`` when the channel is not wired."""
    wired = artifacts.get(key) or []
    return artifact_utils.get_single_instance(wired) if wired else None
