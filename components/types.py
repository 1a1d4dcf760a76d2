"""quantgate's custom artifact types.

Kubeflow v2 / Vertex: the compiler wants ``TYPE_NAME`` to match
``^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$`` and the container imports it as ``module.Class``, so each
``TYPE_NAME`` is ``quantgate.<Class>`` and the class is importable from ``quantgate`` (``quantgate/__init__.py``).
The names are defined once in ``shared/properties.py`` (the lineage CLI reads them without importing TFX), with the
``components.<Class>`` names of stores written before the ``quantgate`` import name.
"""

from __future__ import annotations

from tfx.types import artifact
from tfx.types.system_artifacts import Dataset, Metrics

from quantgate.components.shared import properties


class RepresentativeDataset(artifact.Artifact):
    """A calibration sample: gzipped TFRecord of tf.Examples (``data.tfrecord.gz``) + ``manifest.json``.

    Its numbers (``num_examples``, ``strategy``, ``seed``, ``split``, ``sha256``, ...) are custom properties, not
    ``PROPERTIES``: Kubeflow v2 compiles a custom type against a generic schema that declares no properties and
    refuses any.
    """

    TYPE_NAME = properties.REPRESENTATIVE_DATASET_TYPE
    TYPE_ANNOTATION = Dataset


class QuantizationEvaluation(artifact.Artifact):
    """Float vs quantized comparison: ``metrics.json`` + ``report.html``."""

    TYPE_NAME = properties.QUANTIZATION_EVALUATION_TYPE
    TYPE_ANNOTATION = Metrics

