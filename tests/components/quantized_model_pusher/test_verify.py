"""The pusher's checks on the bytes it pushes: real TFLite models through LiteRT, hand-built blessings (no I/O)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
from tfx.types import standard_artifacts

from quantgate.components.quantized_model_pusher import verify


class _Affine(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features")])
    def affine(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": tf.matmul(features, tf.constant([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.25]])) + 0.1}


@pytest.fixture(scope="module")
def int8_tflite_bytes() -> bytes:
    """A full-integer model with int8 input and output, calibrated on inputs in [0, 1)."""
    module = _Affine()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.affine.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.random((1, 3), dtype=np.float32)] for _ in range(32))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def _model(artifact_id: int) -> standard_artifacts.Model:
    model = standard_artifacts.Model()
    model.id, model.uri = artifact_id, f"/models/{artifact_id}"
    return model


def _blessing(**props: str | int | float) -> standard_artifacts.ModelBlessing:
    blessing = standard_artifacts.ModelBlessing()
    blessing.id = 99
    blessing.set_int_custom_property("blessed", 1)
    for key, value in props.items():
        if isinstance(value, str):
            blessing.set_string_custom_property(key, value)
        elif isinstance(value, int):
            blessing.set_int_custom_property(key, value)
        else:
            blessing.set_float_custom_property(key, value)
    return blessing


def test_tflite_io_reads_the_quantization_of_inputs_and_outputs(int8_tflite_bytes) -> None:
    io = verify.tflite_io(_model(1), "/models/1/model.tflite", int8_tflite_bytes)
    (features,), (scores,) = io["inputs"], io["outputs"]
    assert {k: features[k] for k in ("name", "dtype", "shape")} == {
        "name": "features", "dtype": "int8", "shape": [None, 3]}
    assert scores["name"] == "scores" and scores["dtype"] == "int8" and scores["shape"] == [None, 2]
    # Calibrated on [0, 1): 256 int8 steps over that range, 0.0 at the bottom of the int8 range.
    assert features["scale"] == pytest.approx(1 / 255, rel=0.02) and features["zero_point"] == -128
    assert scores["scale"] > 0 and isinstance(scores["zero_point"], int)


def test_tflite_io_refuses_bytes_that_are_not_a_tflite_model(int8_tflite_bytes) -> None:
    with pytest.raises(ValueError, match=r"input 'model' \(artifact 7, /models/7\): /m.tflite \(100 bytes\) is not "
                                         r"a loadable TFLite model .*LiteRT: .*Flatbuffer"):
        verify.tflite_io(_model(7), "/m.tflite", int8_tflite_bytes[:100])


def test_kubeflow_artifact_id_is_tfx_s() -> None:
    name = "projects/p/locations/l/metadataStores/default/artifacts/123"
    assert verify.kubeflow_artifact_id(name) == kubeflow_v2_entrypoint_utils._get_hashed_id(name, {})


@pytest.mark.parametrize("form", ["int", "digits", "json number", "kubeflow name"])
def test_current_model_id_is_recognized_in_every_form_a_runner_hands_over(form: str) -> None:
    name = "projects/p/locations/l/metadataStores/default/artifacts/123"
    model_id = verify.kubeflow_artifact_id(name)  # a 63-bit id, as on Kubeflow: a double cannot hold it exactly
    value = {"int": model_id, "digits": str(model_id), "json number": float(model_id), "kubeflow name": name}[form]
    verify.check_blessing_is_about(_model(model_id), "aa", "model_blessing", _blessing(current_model_id=value))
    with pytest.raises(ValueError, match=r"input 'model_blessing' \(artifact 99\) is about model .* \(current_model_id"
                                         r"\), not input 'model' \(artifact 5\); wire the blessing"):
        verify.check_blessing_is_about(_model(5), "aa", "model_blessing", _blessing(current_model_id=value))


def test_blessing_without_current_model_id_or_evaluated_sha256_is_not_checked() -> None:
    verify.check_blessing_is_about(_model(5), "aa", "float_blessing", _blessing())  # e.g. the stock Evaluator's
    verify.check_blessing_is_about(_model(5), "aa", "model_blessing", _blessing(evaluated_sha256="aa"))
    with pytest.raises(ValueError, match=r"sha256 bb \(evaluated_sha256\), but input 'model' \(artifact 5, "
                                         r"/models/5\) holds bytes with sha256 aa"):
        verify.check_blessing_is_about(_model(5), "aa", "model_blessing", _blessing(evaluated_sha256="bb"))


def _candidate(artifact_id: int, sha256: str) -> standard_artifacts.Model:
    model = _model(artifact_id)
    model.set_string_custom_property("sha256", sha256)
    return model


def test_a_candidate_is_chosen_by_id_else_by_the_bytes_the_blessing_was_computed_on() -> None:
    candidates = [_candidate(5, "aa"), _candidate(6, "bb"), _candidate(7, "cc")]
    assert verify.select_candidate(candidates, "model_blessing", _blessing(current_model_id=6)).id == 6
    # Another orchestrator's ids (a blessing computed where the candidates had other ids): the sha256 decides.
    chosen = verify.select_candidate(candidates, "model_blessing", _blessing(current_model_id=60, evaluated_sha256="cc"))
    assert chosen.id == 7
    for blessing in (_blessing(current_model_id=60, evaluated_sha256="dd"), _blessing(current_model_id=60)):
        with pytest.raises(ValueError, match=r"chose model 60 \(current_model_id\), which is not among the 3 "
                                             r"candidates of input 'model' \(artifacts 5, 6, 7\), nor are the bytes"):
            verify.select_candidate(candidates, "model_blessing", blessing)
    twins = [_candidate(5, "aa"), _candidate(6, "aa")]
    with pytest.raises(ValueError, match="exactly one candidate's"):
        verify.select_candidate(twins, "model_blessing", _blessing(current_model_id=60, evaluated_sha256="aa"))
