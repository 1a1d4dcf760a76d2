"""QuantizationEvaluator: float vs quantized model on the same split, and the gate that writes the ModelBlessing."""
