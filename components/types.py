"""quantgate's custom artifact types.

Kubeflow v2 / Vertex: the compiler wants ``TYPE_NAME`` to match
``^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$`` and the container imports it as ``module.Class``, so each
``TYPE_NAME`` is ``components.<Class>`` and the class is importable from ``components``.
"""

from __future__ import annotations

from tfx.types import artifact
from tfx.types.system_artifacts import Dataset, Metrics


class RepresentativeDataset(artifact.Artifact):
    """A calibration sample: gzipped TFRecord of tf.Examples (``data.tfrecord.gz``) + ``manifest.json``.

    Its numbers (``num_examples``, ``strategy``, ``seed``, ``split``, ``sha256``, ...) are custom properties, not
    ``PROPERTIES``: Kubeflow v2 compiles a custom type against a generic schema that declares no properties and
    refuses any.
    """

    TYPE_NAME = "components.RepresentativeDataset"
    TYPE_ANNOTATION = Dataset


class QuantizationEvaluation(artifact.Artifact):
    """Float vs quantized comparison: ``metrics.json`` + ``report.html``."""

    TYPE_NAME = "components.QuantizationEvaluation"
    TYPE_ANNOTATION = Metrics
