"""calibration: signature resolution and the tf.Example -> dense inputs path (tiny SavedModels, no pipeline)."""

from __future__ import annotations

import numpy as np
import pytest

from quantgate.components.shared.signature_inputs import (
    InputSpec,
    dense_signature_specs,
    examples_to_inputs,
    serialized_example_signatures,
)

A = InputSpec(name="a", dtype=np.dtype(np.float32), shape=(None, 2))
B = InputSpec(name="b", dtype=np.dtype(np.float32), shape=(None, 1))


def test_the_one_dense_signature_is_picked_when_none_is_named(tiny_models) -> None:
    name, specs = dense_signature_specs(tiny_models["one_dense"], None)
    assert name == "dense"
    assert specs == [A, B]


def test_a_named_signature_is_resolved_with_its_dtypes(tiny_models) -> None:
    name, specs = dense_signature_specs(tiny_models["two_dense"], "dense_int")
    assert name == "dense_int"
    assert specs == [A, InputSpec(name="b", dtype=np.dtype(np.int64), shape=(None, 1))]


def test_several_dense_signatures_need_a_name(tiny_models) -> None:
    with pytest.raises(ValueError, match=r"several signatures \(dense, dense_int\).*Pass signature_name") as e:
        dense_signature_specs(tiny_models["two_dense"], None)
    assert "parse {examples: string[None]}" in str(e.value)  # every signature is listed with its inputs


def test_no_dense_signature_is_an_error_with_guidance(tiny_models) -> None:
    with pytest.raises(ValueError, match=r"no signature takes only dense numeric.*cannot be derived") as error:
        dense_signature_specs(tiny_models["string_only"], None)
    # What was looked at (the signatures, the root's __call__) and the two fixes.
    assert "has no Keras call (no restorable __call__ function on its root object" in str(error.value)
    assert "export a signature that takes one dense numeric tensor per feature" in str(error.value)
    assert "Or save the Keras model itself" in str(error.value)


def test_a_string_input_signature_is_refused(tiny_models) -> None:
    with pytest.raises(ValueError, match=r"'parse'.*examples.*serialized tf.Examples.*Export a signature") as error:
        dense_signature_specs(tiny_models["one_dense"], "parse")
    # The string input is named, with both fixes.
    assert "The string inputs ['examples'] cannot be fed to an int8 TFLite model" in str(error.value)
    assert "move the lookup into Transform and export a signature over the transformed ids" in str(error.value)
    assert "export a signature over integer ids" in str(error.value)


def test_serialized_example_signatures_are_the_string_input_ones(tiny_models) -> None:
    assert serialized_example_signatures(tiny_models["two_dense"]) == ["parse"]
    assert serialized_example_signatures(tiny_models["sine"]) == []


def test_an_unknown_signature_lists_the_existing_ones(tiny_models) -> None:
    with pytest.raises(ValueError, match=r"no signature 'nope'.*dense \{a: float32\[None, 2\], b: float32\[None, 1\]\}"):
        dense_signature_specs(tiny_models["one_dense"], "nope")


def test_examples_become_one_array_per_input_in_the_spec_dtype(example) -> None:
    serialized = [example(a=[1.0, 2.0], b=[3], extra=[b"x"]), example(a=[4.0, 5.5], b=[-6], extra=[b"y"])]
    ints = InputSpec(name="b", dtype=np.dtype(np.int64), shape=(None, 1))
    inputs = examples_to_inputs(serialized, [A, B], source="test")
    assert set(inputs) == {"a", "b"}
    np.testing.assert_array_equal(inputs["a"], np.array([[1.0, 2.0], [4.0, 5.5]], dtype=np.float32))
    np.testing.assert_array_equal(inputs["b"], np.array([[3.0], [-6.0]], dtype=np.float32))
    assert inputs["a"].dtype == np.float32 and inputs["b"].dtype == np.float32
    assert examples_to_inputs(serialized, [ints], source="test")["b"].dtype == np.int64


def test_an_object_array_of_examples_keeps_trailing_nul_bytes(example) -> None:
    serialized = np.array([example(a=[0.0, 0.0], b=[0.0])], dtype=object)
    assert serialized[0].endswith(b"\x00")  # a numpy "S" array would drop these bytes and break the proto
    np.testing.assert_array_equal(examples_to_inputs(serialized, [A], source="t")["a"], [[0.0, 0.0]])


def test_a_missing_feature_is_named_with_the_source(example) -> None:
    with pytest.raises(ValueError, match=r"rep_set/train: the examples have no feature 'b'.*Features present: \['a'\]"):
        examples_to_inputs([example(a=[1.0, 2.0])], [A, B], source="rep_set/train")


def test_a_feature_missing_from_some_examples_is_counted(example) -> None:
    serialized = [example(a=[1.0, 2.0], b=[1.0]), example(a=[1.0, 2.0])]
    with pytest.raises(ValueError, match=r"src: feature 'b' is missing from 1 of a batch of 2 examples"):
        examples_to_inputs(serialized, [B], source="src")


def test_a_wrong_length_is_named(example) -> None:
    serialized = [example(a=[1.0, 2.0]), example(a=[1.0, 2.0, 3.0])]
    with pytest.raises(ValueError, match=r"src: feature 'a' must have 2 value\(s\) per example.*example #1 of a batch of 2 has 3"):
        examples_to_inputs(serialized, [A], source="src")


def test_a_string_feature_for_a_numeric_input_is_refused(example) -> None:
    with pytest.raises(ValueError, match=r"src: feature 'b' holds .*binary values but the input is float32"):
        examples_to_inputs([example(b=[b"x"])], [B], source="src")


def test_no_examples_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"src: no examples"):
        examples_to_inputs([], [A], source="src")


def test_an_unknown_inner_dimension_is_refused(example) -> None:
    ragged = InputSpec(name="a", dtype=np.dtype(np.float32), shape=(None, None))
    with pytest.raises(ValueError, match=r"only the batch dimension may be unknown"):
        examples_to_inputs([example(a=[1.0])], [ragged], source="src")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1.9])
def test_a_float_that_is_not_a_whole_number_is_refused_for_an_integer_input(example, value: float) -> None:
    spec = InputSpec(name="b", dtype=np.dtype(np.int64), shape=(None, 1))
    with pytest.raises(ValueError, match=r"split x: input 'b' is int64 but the examples hold 1 value\(s\) that are "
                                         r"not whole numbers .*; feed integer ids"):
        examples_to_inputs([example(b=[2.0]), example(b=[value])], [spec], source="split x")


def test_whole_floats_become_integer_ids(example) -> None:
    spec = InputSpec(name="b", dtype=np.dtype(np.int64), shape=(None, 1))
    assert examples_to_inputs([example(b=[2.0]), example(b=[7.0])], [spec], source="s")["b"].tolist() == [[2], [7]]


def test_a_feature_of_another_type_in_some_examples_is_a_clear_error(example) -> None:
    spec = InputSpec(name="b", dtype=np.dtype(np.float32), shape=(None, 1))
    with pytest.raises(ValueError, match=r"split x: cannot decode the examples \(.*wrong type.*\); encode every "
                                         r"feature with one type in all examples"):
        examples_to_inputs([example(b=[1.0]), example(b=[b"one"])], [spec], source="split x")


def test_records_that_are_not_examples_are_a_clear_error() -> None:
    spec = InputSpec(name="b", dtype=np.dtype(np.float32), shape=(None, 1))
    with pytest.raises(ValueError, match=r"split x: cannot decode the examples .*not serialized tf.Examples"):
        examples_to_inputs([b"\x0a\xff\xff garbage"], [spec], source="split x")
