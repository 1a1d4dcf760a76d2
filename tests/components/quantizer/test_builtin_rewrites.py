"""builtin_rewrites on real SavedModels, the real converter and the real LiteRT interpreter: one-hot / multi-hot /
count layers (``CategoryEncoding``, ``tf.math.bincount``: ``DenseBincount``) become ``ONE_HOT`` builtins in float and
full int8, with the SavedModel's answers; an op the builtins lack is refused by op, node and layer, and kept as a
Flex op only with ``allow_select_ops``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert import schema_py_generated as tflite_schema
from ai_edge_litert.interpreter import Interpreter

from quantgate.components.quantizer import builtin_rewrites, tflite_engine
from quantgate.components.quantizer.engines import convert_with_float_reference
from quantgate.components.quantizer.options import resolve_options
from quantgate.components.quantizer.report import build_report, op_summary
from quantgate.components.shared.model_runners import SavedModelRunner, TFLiteRunner

SIGNATURE = "serving_features"
ROWS = 64
# (layer, CategoryEncoding output_mode, num_tokens) of the encoded model.
ENCODINGS = {"color_one_hot": ("one_hot", 4), "tags_multi_hot": ("multi_hot", 6), "words_count": ("count", 8),
             "words_weighted": ("count", 8)}


def _save(model: keras.Model, specs: dict[str, tf.TensorSpec], path: str) -> str:
    # As the Quantizer's conftest saves: a plain tf.Module with a dense signature; laid out as a Trainer's Model.
    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[specs])
    def serve(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {"probabilities": model(features)}

    saved_model_dir = os.path.join(path, "Format-Serving")
    tf.saved_model.save(module, saved_model_dir, signatures={SIGNATURE: serve})
    return saved_model_dir


@pytest.fixture(scope="module")
def encoded_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The taxi example's pattern and its siblings: int ids one-hot, multi-hot, counted and weight-counted by
    CategoryEncoding, concatenated with a float feature, then Dense layers."""
    keras.utils.set_random_seed(0)
    color = keras.Input((1,), dtype="int32", name="color")
    tags = keras.Input((3,), dtype="int64", name="tags")
    words = keras.Input((5,), dtype="int32", name="words")
    word_weights = keras.Input((5,), name="word_weights")
    x = keras.Input((2,), name="x")
    encode = {name: keras.layers.CategoryEncoding(size, output_mode=mode, name=name)
              for name, (mode, size) in ENCODINGS.items()}
    parts = [encode["color_one_hot"](color), encode["tags_multi_hot"](tags), encode["words_count"](words),
             encode["words_weighted"](words, count_weights=word_weights), x]
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()(parts))
    # Named: Keras numbers unnamed models per process (model, model_1 ...), and the layer names start with it.
    model = keras.Model([color, tags, words, word_weights, x], keras.layers.Dense(3, activation="softmax")(hidden),
                        name="encoded")
    specs = {"color": tf.TensorSpec([None, 1], tf.int32, name="color"),
             "tags": tf.TensorSpec([None, 3], tf.int64, name="tags"),
             "words": tf.TensorSpec([None, 5], tf.int32, name="words"),
             "word_weights": tf.TensorSpec([None, 5], tf.float32, name="word_weights"),
             "x": tf.TensorSpec([None, 2], tf.float32, name="x")}
    return _save(model, specs, str(tmp_path_factory.mktemp("encoded")))


def _encoded_inputs(rows: int = ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    # Random valid ids: fine for calibrating our own test model (a user's model calibrates on its own examples).
    rng = np.random.default_rng(seed)
    return {"color": rng.integers(0, 4, (rows, 1)).astype(np.int32), "tags": rng.integers(0, 6, (rows, 3)),
            "words": rng.integers(0, 8, (rows, 5)).astype(np.int32),
            "word_weights": rng.uniform(0, 2, (rows, 5)).astype(np.float32),
            "x": rng.normal(size=(rows, 2)).astype(np.float32)}


def _ops(content: bytes) -> list[str]:
    """The op types of the model's main subgraph, as the interpreter runs them."""
    interpreter = Interpreter(model_content=content)
    return sorted({op["op_name"] for op in interpreter._get_ops_details()})


def _operator_codes(content: bytes) -> set[str]:
    """Every op type of every subgraph (If / While bodies too), from the flatbuffer: builtin names, and custom
    ops (Flex ones included) by their custom code."""
    model = tflite_schema.Model.GetRootAs(content, 0)
    names = {v: k for k, v in vars(tflite_schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        custom = code.CustomCode()
        codes.add(custom.decode() if custom else names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
    return codes


def _assert_builtins_only(content: bytes) -> None:
    codes = _operator_codes(content)
    assert "CUSTOM" not in codes and not [c for c in codes if c.startswith("Flex") or "Bincount" in c], codes
    assert builtin_rewrites.flex_ops(content) == []


def _graph_ops(function: tf.types.experimental.ConcreteFunction) -> set[str]:
    graph_def = function.graph.as_graph_def()
    return {n.op for n in graph_def.node} | {n.op for f in graph_def.library.function for n in f.node_def}


def _tflite_predict(tmp_path, content: bytes, inputs: dict[str, np.ndarray]) -> np.ndarray:
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    return TFLiteRunner(str(path)).predict(inputs)["probabilities"]


def test_every_dense_bincount_is_rewritten_and_named_by_layer(encoded_model: str) -> None:
    loaded = tf.saved_model.load(encoded_model)
    signature = loaded.signatures[SIGNATURE]
    assert builtin_rewrites.has_dense_bincount(signature)  # in the library function the signature calls
    rewritten = builtin_rewrites.rewrite_dense_bincount(signature)
    found = {(r.layer, r.output, r.size) for r in rewritten.rewrites}
    assert found == {("encoded/color_one_hot", "multi_hot", 4), ("encoded/tags_multi_hot", "multi_hot", 6),
                     ("encoded/words_count", "count", 8), ("encoded/words_weighted", "weighted_count", 8)}
    assert all(r.node.endswith("/bincount/DenseBincount") and r.function is None for r in rewritten.rewrites)
    ops = _graph_ops(rewritten.function)
    assert "DenseBincount" not in ops and {"OneHot", "Max", "Sum"} <= ops
    # Same input names and output structure, so the converter keeps the feature names.
    assert [s.name for s in rewritten.function.structured_input_signature[0]] == sorted(_encoded_inputs())
    assert list(rewritten.function.structured_outputs) == ["probabilities"]
    assert builtin_rewrites.check_rewrite_equal(signature, rewritten.function, _encoded_inputs()) == ROWS


def test_a_function_without_dense_bincount_comes_back_unchanged(encoded_model: str) -> None:
    function = tf.function(lambda x: {"y": tf.one_hot(x, 3)},
                           input_signature=[tf.TensorSpec([None], tf.int32, name="x")]).get_concrete_function()
    rewritten = builtin_rewrites.rewrite_dense_bincount(function)
    assert rewritten.function is function and rewritten.rewrites == ()
    assert builtin_rewrites.rewrite_for_builtins(function) is function


def test_float_conversion_has_one_hot_builtins_and_the_saved_models_answers(encoded_model: str, tmp_path) -> None:
    loaded = tf.saved_model.load(encoded_model)
    content = builtin_rewrites.tflite_converter(loaded.signatures[SIGNATURE], loaded).convert()
    assert {"ONE_HOT", "SELECT_V2", "REDUCE_MAX", "SUM"} <= set(_ops(content))
    _assert_builtins_only(content)
    inputs = _encoded_inputs(seed=1)
    want = SavedModelRunner(encoded_model, SIGNATURE).predict(inputs)["probabilities"]
    np.testing.assert_allclose(_tflite_predict(tmp_path, content, inputs), want, rtol=1e-5, atol=1e-6)


def test_int8_conversion_is_all_integer_and_close_to_the_saved_model(encoded_model: str, tmp_path) -> None:
    inputs = _encoded_inputs()
    # The engine's own path: float_reference -> builtin_rewrites, the calibration rows, the equality check.
    result = convert_with_float_reference(encoded_model, SIGNATURE, resolve_options("int8"), inputs,
                                          str(tmp_path / "int8.tflite"), str(tmp_path / "float.tflite"))
    content = (tmp_path / "int8.tflite").read_bytes()
    summary = op_summary(content)
    # Three bool ONE_HOT for four encodings (the converter shares one_hot(words, 8) between the two counts of
    # words); the 1 / 0 values come out of int8 SELECT_V2s.
    assert summary["float_op_count"] == 0 and summary["ops"]["ONE_HOT"] == {"bool": 3}
    assert summary["ops"]["SELECT_V2"] == {"int8": 3} and summary["ops"]["REDUCE_MAX"] == {"int8": 2}
    _assert_builtins_only(content)
    assert {r["layer"] for r in result["builtin_rewrites"]} == {f"encoded/{name}" for name in ENCODINGS}
    assert {r["checked_rows"] for r in result["builtin_rewrites"]} == {ROWS}
    held_out = _encoded_inputs(seed=2)
    want = SavedModelRunner(encoded_model, SIGNATURE).predict(held_out)["probabilities"]
    got = _tflite_predict(tmp_path, content, held_out)
    assert np.abs(got - want).max() < 0.05 and (got.argmax(1) == want.argmax(1)).mean() >= 0.9
    float_content = (tmp_path / "float.tflite").read_bytes()
    assert "ONE_HOT" in _ops(float_content)


@pytest.fixture(scope="module")
def bincount_functions() -> dict[str, tf.types.experimental.ConcreteFunction]:
    """tf.math.bincount without Keras' range assert: out-of-range ids reach DenseBincount itself."""

    def fixed(ids: tf.Tensor) -> dict[str, tf.Tensor]:  # size 5, ids >= 5 dropped
        return {"multi_hot": tf.math.bincount(ids, minlength=5, maxlength=5, axis=-1, binary_output=True,
                                              dtype=tf.float32),
                "counts": tf.math.bincount(ids, minlength=5, maxlength=5, axis=-1, dtype=tf.float32)}

    def dynamic(ids: tf.Tensor) -> dict[str, tf.Tensor]:  # rank 1, size max(ids) + 1, int64 ids
        return {"counts": tf.math.bincount(ids, axis=0, dtype=tf.int32)}

    def branch(ids: tf.Tensor, flag: tf.Tensor) -> dict[str, tf.Tensor]:  # inside an If: a library function
        encode = lambda: tf.math.bincount(ids, minlength=5, maxlength=5, axis=-1, binary_output=True,  # noqa: E731
                                          dtype=tf.float32)
        return {"multi_hot": tf.cond(flag[0] > 0, encode, lambda: tf.zeros_like(encode()))}

    return {
        "fixed": tf.function(fixed, input_signature=[tf.TensorSpec([None, 3], tf.int32, name="ids")])
        .get_concrete_function(),
        "dynamic": tf.function(dynamic, input_signature=[tf.TensorSpec([None], tf.int64, name="ids")])
        .get_concrete_function(),
        "branch": tf.function(branch, input_signature=[tf.TensorSpec([None, 3], tf.int32, name="ids"),
                                                      tf.TensorSpec([1], tf.int32, name="flag")])
        .get_concrete_function(),
    }


def test_ids_out_of_range_are_dropped_as_dense_bincount_drops_them(bincount_functions) -> None:
    function = bincount_functions["fixed"]
    rewritten = builtin_rewrites.rewrite_dense_bincount(function)
    assert {(r.output, r.size) for r in rewritten.rewrites} == {("multi_hot", 5), ("count", 5)}
    ids = {"ids": np.array([[0, 4, 4], [5, 7, 1], [9, 9, 9]], np.int32)}
    assert builtin_rewrites.check_rewrite_equal(function, rewritten.function, ids) == 3
    got = builtin_rewrites.run_function(rewritten.function, ids)
    np.testing.assert_array_equal(got["counts"], [[1, 0, 0, 0, 2], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    # Negative ids: DenseBincount refuses them, one_hot would give zeros; the check says the original fails.
    with pytest.raises(ValueError, match=r"the original function fails on these rows.*must be non-negative"):
        builtin_rewrites.check_rewrite_equal(function, rewritten.function, {"ids": np.array([[1, -1, 2]], np.int32)})


def test_a_size_computed_at_run_time_and_rank_1_ids(bincount_functions) -> None:
    function = bincount_functions["dynamic"]
    rewritten = builtin_rewrites.rewrite_dense_bincount(function)
    assert [(r.output, r.size) for r in rewritten.rewrites] == [("count", None)]
    ids = {"ids": np.array([3, 1, 3, 0, 6])}
    builtin_rewrites.check_rewrite_equal(function, rewritten.function, ids)
    np.testing.assert_array_equal(builtin_rewrites.run_function(rewritten.function, ids)["counts"],
                                  [1, 1, 0, 2, 0, 0, 1])


def test_a_dense_bincount_inside_control_flow_is_rewritten_in_its_branch(bincount_functions) -> None:
    function = bincount_functions["branch"]
    rewritten = builtin_rewrites.rewrite_dense_bincount(function)
    assert len(rewritten.rewrites) >= 1 and all(r.function for r in rewritten.rewrites)
    assert "DenseBincount" not in _graph_ops(rewritten.function)
    for flag in (1, 0):
        builtin_rewrites.check_rewrite_equal(function, rewritten.function,
                                             {"ids": np.array([[1, 2, 2], [4, 0, 9]], np.int32),
                                              "flag": np.array([flag], np.int32)})
    content = builtin_rewrites.tflite_converter(function, tf.Module()).convert()
    assert "IF" in _ops(content) and {"ONE_HOT", "SELECT_V2", "REDUCE_MAX"} <= _operator_codes(content)
    _assert_builtins_only(content)
    runner = Interpreter(model_content=content).get_signature_runner("serving_default")
    ids = np.array([[1, 2, 2], [4, 0, 9]], np.int32)
    for flag in (1, 0):
        want = function(ids=tf.constant(ids), flag=tf.constant([flag]))["multi_hot"].numpy()
        np.testing.assert_array_equal(runner(ids=ids, flag=np.array([flag], np.int32))["multi_hot"], want)


def test_a_difference_after_the_rewrite_is_named(bincount_functions) -> None:
    function = bincount_functions["fixed"]

    def shifted(ids: tf.Tensor) -> dict[str, tf.Tensor]:
        out = function(ids)
        return {"multi_hot": out["multi_hot"], "counts": tf.roll(out["counts"], 1, axis=1)}

    wrong = tf.function(shifted, input_signature=[tf.TensorSpec([None, 3], tf.int32, name="ids")]).get_concrete_function()
    with pytest.raises(ValueError, match=r"output 'counts' differs after replacing DenseBincount by ONE_HOT on \d+ "
                                         r"value\(s\) of 10; first at index \[0, 0\] \(row 0\)"):
        builtin_rewrites.check_rewrite_equal(function, wrong, {"ids": np.array([[0, 4, 4], [1, 1, 2]], np.int32)})


def test_layer_of_strips_tensorflow_wrappers_and_op_scopes() -> None:
    assert builtin_rewrites.layer_of("StatefulPartitionedCall/model/enc/bincount/DenseBincount") == "model/enc"
    assert builtin_rewrites.layer_of("select/cumprod_layer/Cumprod@__inference_serve_431") == "select/cumprod_layer"
    assert builtin_rewrites.layer_of("DenseBincount") == "DenseBincount"


class _Cumprod(keras.layers.Layer):
    """A layer whose op (tf.Cumprod) TFLite builtins lack but TF Select has."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.math.cumprod(inputs, axis=1)


@pytest.fixture(scope="module")
def select_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="x")
    hidden = _Cumprod(name="cumprod_layer")(keras.layers.Dense(4, name="dense_in")(x))
    model = keras.Model(x, keras.layers.Dense(2, activation="softmax", name="dense_out")(hidden), name="select")
    return _save(model, {"x": tf.TensorSpec([None, 4], tf.float32, name="x")}, str(tmp_path_factory.mktemp("select")))


def _select_inputs(rows: int = ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).uniform(-1, 1, (rows, 4)).astype(np.float32)}


@pytest.mark.parametrize("mode", ["float16", "int8"])
def test_an_op_builtins_lack_is_refused_naming_op_node_layer_and_fix(select_model: str, mode: str) -> None:
    inputs = _select_inputs() if mode == "int8" else None
    with pytest.raises(builtin_rewrites.MissingBuiltinOps) as error:
        tflite_engine.convert(select_model, SIGNATURE, resolve_options(mode), inputs)
    message = str(error.value)
    assert message.startswith("Quantizer: the converted function (inputs x) needs TensorFlow op(s) that TFLite "
                              "builtins lack: Cumprod (layer 'select/cumprod_layer'; node "
                              "'select/cumprod_layer/Cumprod'). Change those layers")
    assert "allow_select_ops=True" in message and "Flex delegate" in message
    assert [(m.op, m.layers) for m in error.value.missing] == [("Cumprod", ("select/cumprod_layer",))]
    loaded = tf.saved_model.load(select_model)
    assert [m.op for m in builtin_rewrites.missing_builtin_ops(loaded.signatures[SIGNATURE])] == ["Cumprod"]


def test_allow_select_ops_keeps_the_op_as_flex_and_the_report_says_so(select_model: str, tmp_path) -> None:
    inputs = _select_inputs()
    options = resolve_options("int8", "float32", allow_select_ops=True)
    try:
        content = tflite_engine.convert(select_model, SIGNATURE, options, inputs)
    finally:
        builtin_rewrites.set_select_ops_allowed(False)
    assert builtin_rewrites.flex_ops(content) == ["Cumprod"]
    summary = op_summary(content)
    assert summary["ops"]["FULLY_CONNECTED"] == {"int8": 2}  # the rest is int8; the Flex op computes in float
    report = build_report(content, options=options, signature_name=SIGNATURE, saved_model_dir=select_model,
                          inputs=inputs, representative_dataset_uri="memory", conversion_seconds=0.0)
    assert report["allow_select_ops"] is True and report["select_ops"] == ["Cumprod"]
    assert any("TF Select (Flex) op(s) Cumprod" in w and "Flex delegate" in w for w in report["warnings"])
    # In this process (TensorFlow imported) LiteRT finds TensorFlow's Flex delegate and runs it.
    want = SavedModelRunner(select_model, SIGNATURE).predict(inputs)["probabilities"]
    assert np.abs(_tflite_predict(tmp_path, content, inputs) - want).max() < 0.05
    # In a process without TensorFlow, ai-edge-litert has no Flex kernels.
    path = tmp_path / "model.tflite"
    script = ("import sys, numpy as np\nfrom ai_edge_litert.interpreter import Interpreter\n"
              f"i = Interpreter(model_path={str(path)!r})\n"
              "try:\n    i.get_signature_runner('serving_default')(x=np.zeros((1, 4), np.float32))\n"
              "except Exception as e:\n    print('FAILED', e)\nprint('tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stdout
    assert "FAILED Select TensorFlow op(s), included in the given model, is(are) not supported" in out
    assert out.strip().endswith("False")


def test_without_the_opt_in_no_converter_keeps_select_ops(select_model: str) -> None:
    loaded = tf.saved_model.load(select_model)
    converter = builtin_rewrites.tflite_converter(loaded.signatures[SIGNATURE], loaded)
    assert tf.lite.OpsSet.SELECT_TF_OPS not in set(converter.target_spec.supported_ops)
    with builtin_rewrites.allowing_select_ops(True):
        converter = builtin_rewrites.tflite_converter(loaded.signatures[SIGNATURE], loaded)
    assert tf.lite.OpsSet.SELECT_TF_OPS in set(converter.target_spec.supported_ops)
    assert not builtin_rewrites.select_ops_allowed()


def test_weights_of_unknown_size_are_refused_naming_the_node() -> None:
    def weighted(ids: tf.Tensor, weights: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"counts": tf.math.bincount(ids, weights=weights, minlength=5, maxlength=5, axis=-1)}

    # Unknown rank: tf.math.bincount's empty placeholder weights and real ones would rewrite differently.
    function = tf.function(weighted, input_signature=[tf.TensorSpec([None, 3], tf.int32, name="ids"),
                                                      tf.TensorSpec(None, tf.float32, name="weights")])
    with pytest.raises(builtin_rewrites.RewriteRefused, match=r"DenseBincount node 'bincount/DenseBincount' "
                                                              r"\(layer 'bincount/DenseBincount'\) has weights of unknown size"):
        builtin_rewrites.rewrite_dense_bincount(function.get_concrete_function())


def test_the_opt_in_travels_from_the_component_to_the_options() -> None:
    from tfx.types import channel_utils, standard_artifacts

    from quantgate.components import Quantizer

    model = channel_utils.as_channel([standard_artifacts.Model()])
    assert Quantizer(model=model, mode="float16", allow_select_ops=True).exec_properties["allow_select_ops"] == 1
    assert Quantizer(model=model, mode="float16").exec_properties["allow_select_ops"] == 0
    assert resolve_options("float16", allow_select_ops=True).allow_select_ops
    assert not resolve_options("float16").allow_select_ops


def test_the_litert_engine_keeps_flex_ops_only_with_the_opt_in(select_model: str) -> None:
    from quantgate.components.quantizer import litert_engine

    inputs = _select_inputs()
    # Refused whether this process converted the float model before with the opt-in (float_reference caches it) or not.
    with pytest.raises(builtin_rewrites.MissingBuiltinOps, match=r"Cumprod .*allow_select_ops=True"):
        litert_engine.convert(select_model, SIGNATURE, resolve_options("int8", engine="litert_quantizer"), inputs)
    try:
        content = litert_engine.convert(
            select_model, SIGNATURE, resolve_options("int8", engine="litert_quantizer", allow_select_ops=True), inputs)
    finally:
        builtin_rewrites.set_select_ops_allowed(False)
    assert builtin_rewrites.flex_ops(content) == ["Cumprod"] and op_summary(content)["ops"]["FULLY_CONNECTED"] == {
        "int8": 2}


def test_a_division_by_a_constant_becomes_a_multiplication_and_the_model_all_int8(tmp_path) -> None:
    # TFX's taxi model normalizes its dense inputs with Keras Normalization layers: (x - mean) / sqrt(variance),
    # and TFLite's DIV has no int8 kernel.
    keras.utils.set_random_seed(0)
    x = keras.Input((3,), name="x")
    normalize = keras.layers.Normalization(name="normalize")
    normalize.adapt(np.random.default_rng(1).normal(5.0, 3.0, (200, 3)).astype(np.float32))
    hidden = keras.layers.Dense(4, activation="relu")(normalize(x))
    model = keras.Model(x, keras.layers.Dense(2, activation="softmax")(hidden), name="normalized")
    saved_model = _save(model, {"x": tf.TensorSpec([None, 3], tf.float32, name="x")}, str(tmp_path / "model"))
    loaded = tf.saved_model.load(saved_model)
    signature = loaded.signatures[SIGNATURE]
    rewritten = builtin_rewrites.rewrite_dense_bincount(signature)
    assert [(r.layer, r.output) for r in rewritten.rewrites] == [("normalized/normalize", "reciprocal_multiply")]
    assert "RealDiv" not in _graph_ops(rewritten.function)
    inputs = {"x": np.random.default_rng(2).normal(5.0, 3.0, (ROWS, 3)).astype(np.float32)}
    assert builtin_rewrites.check_rewrite_equal(signature, rewritten.function, inputs) == ROWS
    content = tflite_engine.convert(saved_model, SIGNATURE, resolve_options("int8"), inputs)
    assert "DIV" not in _ops(content) and op_summary(content)["float_op_count"] == 0
    want = SavedModelRunner(saved_model, SIGNATURE).predict(inputs)["probabilities"]
    np.testing.assert_allclose(_tflite_predict(tmp_path, content, inputs), want, atol=0.05)


def test_a_division_by_an_input_is_left_alone() -> None:
    function = tf.function(lambda a, b: {"y": a / (b + 1.0)}, input_signature=[
        tf.TensorSpec([None], tf.float32, name="a"), tf.TensorSpec([None], tf.float32, name="b")]).get_concrete_function()
    rewritten = builtin_rewrites.rewrite_dense_bincount(function)
    assert rewritten.function is function and rewritten.rewrites == ()
