"""Quantization-aware training (QAT) for a Trainer module file: wrap a trained tf_keras model in tfmot's quantizers,
fine-tune it a few epochs, and save it with the float model's signatures.

The Quantizer recognises the saved model by its fake-quant ops (``shared/fake_quant.py``) and converts it to
full-integer int8 with the ranges learned here (mode ``qat``, or ``int8`` which becomes ``qat``).

It lives in ``components/shared/`` (not in a ``pipelines/models/<dataset>/`` folder): any Trainer module imports it
(``from quantgate.components.shared import qat``), the Kubeflow image installs ``quantgate`` (so a ``run_fn`` shipped in the
image imports it too), and a module file's folder, which TFX packages whole into the user-module wheel, stays small.

Limits (tfmot 0.8 with tf_keras 2.16): the default 8-bit scheme wraps Dense, Conv2D, DepthwiseConv2D,
Conv2DTranspose, Concatenate, Add, pooling, Reshape / Flatten / Dropout, ReLU / Softmax / Activation and a few more;
``quantize_model`` refuses a model holding any other layer, e.g. ``Normalization``, ``Rescaling``, ``Lambda``,
``CategoryEncoding`` or a custom layer, with ``RuntimeError: Layer <name>:<class> is not supported. You can quantize
this layer by passing a tfmot.quantization.keras.QuantizeConfig instance to the quantize_annotate_layer API.``
``quantization_aware_model`` then annotates only the supported layers (``quantize_annotate_layer``) and
``quantize_apply``-es the rest unchanged: those layers stay float in training, and the Quantizer needs a
representative dataset to give them (and the model's I/O) ranges; without one they stay float and the int8
conversion is refused naming them. Nested models (a Model used as a layer) and subclassed models cannot be
annotated: tfmot needs a Sequential or functional model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from quantgate.components.shared.fake_quant import fake_quant_ops

DEFAULT_EPOCHS = 2
# A fine-tune, not a training: a tenth of a usual Adam step keeps the float weights as the starting point.
DEFAULT_LEARNING_RATE = 1e-4


def unsupported_layers(model: keras.Model) -> list[tuple[str, str]]:
    """``(layer name, class name)`` of the layers tfmot's default 8-bit scheme cannot wrap (input layers aside)."""
    registry = tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme().get_quantize_registry()
    return [(layer.name, type(layer).__name__) for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer) and not registry.supports(layer)]


def quantization_aware_model(model: keras.Model) -> keras.Model:
    """``model`` with fake quantization on every layer tfmot supports (weights copied; ``model`` is unchanged).

    Every layer supported: ``quantize_model``. Otherwise the supported layers are annotated one by one
    (``quantize_annotate_layer``) and the others left float (logged with their class), then ``quantize_apply``.
    The result is not compiled.

    Raises:
      ValueError: no layer can be quantized (e.g. a model made of a single custom layer).
    """
    left_float = unsupported_layers(model)
    if not left_float:
        return tfmot.quantization.keras.quantize_model(model)
    float_names = {name for name, _ in left_float}
    quantized = [layer.name for layer in model.layers
                 if layer.name not in float_names and not isinstance(layer, keras.layers.InputLayer)]
    if not quantized:
        raise ValueError(f"quantization-aware training: none of the model's layers can be quantized by tfmot "
                         f"(unsupported: {left_float}); build the model from Dense / Conv2D / ... layers.")
    logging.info("QAT: %d layer(s) quantization-aware, %d left float (tfmot cannot wrap them): %s", len(quantized),
                 len(left_float), ", ".join(f"{name} ({cls})" for name, cls in left_float))

    def annotate(layer: keras.layers.Layer) -> keras.layers.Layer:
        if layer.name in float_names:
            return layer.__class__.from_config(layer.get_config())
        return tfmot.quantization.keras.quantize_annotate_layer(layer.__class__.from_config(layer.get_config()))

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    qat_model = tfmot.quantization.keras.quantize_apply(annotated)
    # Each clone copies weights with set_weights, which leaves an adapted preprocessing layer (Normalization's
    # mean / variance) at its initial state until finalize_state() recomputes it from the copied weights.
    for name in float_names:
        qat_model.get_layer(name).finalize_state()
    return qat_model


def fine_tune(qat_model: keras.Model, train: tf.data.Dataset, *, loss: Any, metrics: Sequence[Any] = (),
              epochs: int = DEFAULT_EPOCHS, learning_rate: float = DEFAULT_LEARNING_RATE,
              steps_per_epoch: int | None = None, validation_data: tf.data.Dataset | None = None,
              validation_steps: int | None = None, callbacks: Sequence[keras.callbacks.Callback] = ()
              ) -> keras.callbacks.History:
    """Compiles ``qat_model`` (Adam at ``learning_rate``, ``loss``, ``metrics``) and trains it ``epochs`` epochs.

    The fake-quant ranges start wide and follow the activations' moving min / max during these steps, so the first
    batches' accuracy is low; a few hundred steps are enough on small models.
    """
    qat_model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=list(metrics))
    return qat_model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, validation_data=validation_data,
                         validation_steps=validation_steps, callbacks=list(callbacks), verbose=2)


def save(qat_model: keras.Model, serving_model_dir: str,
         signatures: Mapping[str, tf.types.experimental.ConcreteFunction], dense_signature: str) -> dict[str, int]:
    """Saves ``qat_model`` with ``signatures`` (build them from the QAT model, as for the float model) and checks
    that ``dense_signature`` runs fake-quant ops; returns their counts by op type.

    Raises:
      ValueError: the signature runs no fake-quant op (it was built from the float model, not ``qat_model``).
    """
    qat_model.save(serving_model_dir, save_format="tf", signatures=dict(signatures))
    ops = fake_quant_ops(serving_model_dir, dense_signature)
    if not ops:
        raise ValueError(f"QAT: signature {dense_signature!r} saved in {serving_model_dir} runs no fake-quant op: "
                         "build the signatures from the quantization-aware model, not the float one.")
    logging.info("QAT: saved %s, signature %r with fake-quant ops %s", serving_model_dir, dense_signature, ops)
    return ops


def train_quantization_aware(model: keras.Model, train: tf.data.Dataset, serving_model_dir: str,
                             signatures_fn: Callable[[keras.Model], Mapping[str, tf.types.experimental.ConcreteFunction]],
                             dense_signature: str, **fine_tune_args: Any) -> keras.Model:
    """The three steps: ``quantization_aware_model(model)``, ``fine_tune(..., **fine_tune_args)`` (``loss`` defaults
    to the float model's), ``save`` with ``signatures_fn(qat_model)``. Returns the fine-tuned QAT model."""
    qat_model = quantization_aware_model(model)
    fine_tune_args.setdefault("loss", model.loss)
    fine_tune(qat_model, train, **fine_tune_args)
    save(qat_model, serving_model_dir, signatures_fn(qat_model), dense_signature)
    return qat_model
