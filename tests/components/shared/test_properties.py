"""The contract's names: importable without TensorFlow, equal to TFX's where TFX defines them."""

from __future__ import annotations

import subprocess
import sys

from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.pusher import executor as pusher_executor
from tfx.types import standard_component_specs
from tfx.utils import path_utils

from quantgate.components.shared import properties


def test_names_tfx_defines_are_tfx_s() -> None:
    assert properties.BLESSED == evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY
    assert properties.CURRENT_MODEL_ID == evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY
    assert properties.CURRENT_MODEL_URI == evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY
    assert properties.PUSHED == pusher_executor._PUSHED_KEY
    assert properties.PUSHED_DESTINATION == pusher_executor._PUSHED_DESTINATION_KEY
    assert properties.PUSHED_VERSION == pusher_executor._PUSHED_VERSION_KEY
    assert properties.MODEL_KEY == standard_component_specs.MODEL_KEY
    assert properties.MODEL_BLESSING_KEY == standard_component_specs.MODEL_BLESSING_KEY
    assert properties.PUSHED_MODEL_KEY == standard_component_specs.PUSHED_MODEL_KEY
    assert properties.EXAMPLES_KEY == standard_component_specs.EXAMPLES_KEY
    assert properties.TRANSFORM_GRAPH_KEY == standard_component_specs.TRANSFORM_GRAPH_KEY
    assert path_utils.serving_model_dir("/m").endswith(properties.SERVING_DIR)


def test_properties_and_the_lineage_cli_import_without_tensorflow_or_tfx() -> None:
    code = ("import sys, components.shared.properties, pipelines.lineage; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tfx', 'apache_beam')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_metric_property_names() -> None:
    assert properties.float_metric("auc") == "float_auc"
    assert properties.quantized_metric("auc") == "quantized_auc"
