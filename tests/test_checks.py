import pytest
import torch

from hoimask._checks import (
    DeviceError,
    DTypeError,
    HoimaskError,
    ShapeError,
    ValueRangeError,
    check_choice,
    check_device,
    check_dtype,
    check_finite,
    check_in_range,
    check_probability,
    check_same_device,
    check_shape,
    check_tensor,
)


def my_public_fn(points):
    return check_shape(points, "B N 3", name="points")


def test_named_and_fixed_dims_bind():
    dims = check_shape(torch.zeros(2, 7, 3), "B N 3", name="points")
    assert dims == {"B": 2, "N": 7}
    check_shape(torch.zeros(2, 5), "B M", name="other", dims=dims)
    assert dims["M"] == 5


def test_wildcards_and_ellipsis():
    check_shape(torch.zeros(4, 9, 3), "_ * 3", name="x")
    check_shape(torch.zeros(3), "... 3", name="x")
    check_shape(torch.zeros(2, 4, 5, 3, 3), "... 3 3", name="x")
    with pytest.raises(ShapeError):
        check_shape(torch.zeros(3, 2), "... 3 3", name="x")


def test_message_names_function_argument_spec_and_shape():
    with pytest.raises(ShapeError) as err:
        my_public_fn(torch.zeros(2, 7, 4))
    msg = str(err.value)
    assert "my_public_fn()" in msg and "'points'" in msg and "B N 3" in msg and "(2, 7, 4)" in msg


def test_inconsistent_named_dim_across_arguments():
    dims = check_shape(torch.zeros(2, 3), "B N", name="a")
    with pytest.raises(ShapeError, match="B=2"):
        check_shape(torch.zeros(3, 3), "B N", name="b", dims=dims)
    with pytest.raises(ShapeError):
        check_shape(torch.zeros(2, 3), "N N", name="c")


def test_error_hierarchy():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, HoimaskError)
    assert issubclass(DTypeError, TypeError) and issubclass(DTypeError, HoimaskError)
    assert issubclass(ValueRangeError, ValueError)
    with pytest.raises(DTypeError):
        check_shape([1, 2, 3], "3", name="x")


def test_dtype_finite_range_choice():
    with pytest.raises(DTypeError, match="int64"):
        check_dtype(torch.zeros(2), torch.int64, name="faces")
    with pytest.raises(ValueRangeError, match="1 non-finite"):
        check_finite(torch.tensor([0.0, float("nan")]), name="points")
    check_finite(torch.tensor([1, 2]), name="ints")
    with pytest.raises(ValueRangeError, match=r"\[0.0, 1.0\)"):
        check_in_range(1.0, name="mask_ratio", low=0.0, high=1.0, high_inclusive=False)
    with pytest.raises(ValueRangeError):
        check_probability(float("nan"), name="p")
    with pytest.raises(DTypeError):
        check_probability(True, name="p")
    with pytest.raises(ValueRangeError, match="'mode'"):
        check_choice("x", ["a", "b"], name="mode")


def test_same_device_ok_on_cpu():
    check_same_device({"a": torch.zeros(1), "b": torch.zeros(2), "c": None})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_device_mismatch():
    with pytest.raises(DeviceError):
        check_same_device({"a": torch.zeros(1), "b": torch.zeros(1, device="cuda")})


def test_version_from_metadata():
    import hoimask

    assert hoimask.__version__ and hoimask.__version__[0].isdigit()


def my_ratio_fn(p):
    return check_probability(p, name="p")


def my_tensor_fn(x):
    return check_tensor(x, "B 3", name="x", floating=True)


def test_wrapped_checks_name_the_public_caller():
    # The location is resolved only when an error is raised, through nested checks too.
    with pytest.raises(ValueRangeError, match=r"my_ratio_fn\(\): argument 'p'"):
        my_ratio_fn(1.5)
    with pytest.raises(DTypeError, match=r"my_tensor_fn\(\): argument 'x'"):
        my_tensor_fn(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ShapeError, match=r"my_tensor_fn\(\): argument 'x'"):
        my_tensor_fn(torch.zeros(2, 4))


def test_tensor_checks_refuse_non_tensors_with_a_typed_error():
    with pytest.raises(DTypeError, match="'x'"):
        check_finite([1.0, float("nan")], name="x")
    with pytest.raises(DTypeError, match="'x'"):
        check_device(3.0, "cpu", name="x")


def test_check_int_refuses_floats_and_bools_and_checks_bounds():
    from hoimask._checks import check_int

    assert check_int(3, name="n", low=1, high=3) == 3
    with pytest.raises(DTypeError, match="'n'.*2.5"):
        check_int(2.5, name="n")
    with pytest.raises(DTypeError):
        check_int(True, name="n")
    with pytest.raises(ValueRangeError, match=r"\[1, inf\], got 0"):
        check_int(0, name="n", low=1)
    with pytest.raises(ValueRangeError, match=r"\[-inf, 4\], got 5"):
        check_int(5, name="n", high=4)


def test_check_size_refuses_floats_wrong_lengths_and_small_entries():
    from hoimask._checks import check_size

    def public(image_size, **kw):
        return check_size(image_size, name="image_size", **kw)

    assert public((3, 4)) == (3, 4) and public([3, 4]) == (3, 4) and public(torch.Size([3, 4])) == (3, 4)
    assert public(5, allow_int=True) == (5, 5) and public((8, 9, 10), length=3, low=8) == (8, 9, 10)
    with pytest.raises(DTypeError, match=r"public\(\): argument 'image_size\[0\]' expected an int, got 32.5"):
        public((32.5, 32))
    with pytest.raises(DTypeError, match="'image_size'"):
        public(32)  # an int only where allowed
    with pytest.raises(DTypeError, match=r"'image_size\[1\]'"):
        public((3, True))
    with pytest.raises(ShapeError, match="'image_size' expected 2 entries, got 1"):
        public((3,))
    with pytest.raises(ValueRangeError, match=r"'image_size\[0\]' expected an int >= 1, got 0"):
        public((0, 3))
    with pytest.raises(ValueRangeError, match=r">= 8, got 7"):
        public(7, allow_int=True, low=8)
