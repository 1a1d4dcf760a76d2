"""quantgate: TFX components that calibrate, quantize, evaluate and gate int8 TFLite models.

Public names: the custom artifact types (their ``TYPE_NAME`` is ``components.<Class>``, which Kubeflow's
container entrypoint imports) and, as they land, the components.
"""

from components.pusher.component import QuantizedModelPusher
from components.quantization_evaluator.component import QuantizationEvaluator
from components.quantizer.component import Quantizer
from components.representative_dataset.component import RepresentativeDatasetGen
from components.types import QuantizationEvaluation, RepresentativeDataset

__all__ = ["QuantizationEvaluation", "QuantizationEvaluator", "QuantizedModelPusher", "Quantizer", "RepresentativeDataset",
           "RepresentativeDatasetGen"]
