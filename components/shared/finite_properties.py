"""Float custom properties that MLMD can store: a NaN, an infinity or ``None`` is left unset, never written.

MLMD's SQLite (and MySQL) backend writes a double into the SQL text of its INSERT: NaN becomes ``nan``, which the
database reads as a column name (``no such column: nan``). The publish then fails after the executor returned, and
the execution stays RUNNING with its outputs unpublished. An undefined number (a delta with no example scored, a
metric of an empty split) is therefore an absent property; the artifact's ``reason`` and its JSON file say why.
"""

from __future__ import annotations

import math

from tfx.types import Artifact


def set_finite_float_property(artifact: Artifact, name: str, value: float | None) -> bool:
    """Sets ``name`` to ``value`` when it is a finite number; otherwise removes ``name`` (a value set earlier on the
    same artifact would describe another run) and leaves it unset. Returns whether the property was set."""
    if value is not None and math.isfinite(value):
        artifact.set_float_custom_property(name, float(value))
        return True
    custom = artifact.mlmd_artifact.custom_properties
    if name in custom:
        del custom[name]
    return False
