import numpy as np
import pytest

from server.pooling import finish, pool


def test_truncate_happens_before_normalize() -> None:
    v = np.array([[3.0, 4.0, 12.0]], dtype=np.float32)
    out = finish(v, dimensions=2, normalize=True)
    np.testing.assert_allclose(out, [[0.6, 0.8]], rtol=1e-6)
    assert np.linalg.norm(out[0]) == pytest.approx(1.0, abs=1e-6)


def test_normalize_false_keeps_raw_values() -> None:
    v = np.array([[3.0, 4.0, 12.0]], dtype=np.float32)
    np.testing.assert_array_equal(finish(v, dimensions=None, normalize=False), v)


def test_inputs_are_never_modified() -> None:
    v = np.array([[3.0, 4.0, 12.0]], dtype=np.float32)
    finish(v, dimensions=2, normalize=True)
    finish(v, dimensions=None, normalize=True)
    np.testing.assert_array_equal(v, [[3.0, 4.0, 12.0]])


def test_zero_vector_does_not_produce_nan() -> None:
    out = finish(np.zeros((1, 4), dtype=np.float32), None, True)
    assert np.isfinite(out).all()


def test_mean_pooling_ignores_padding() -> None:
    hidden = np.array([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]], dtype=np.int64)
    np.testing.assert_allclose(pool(hidden, mask, "mean"), [[2.0, 2.0]])


def test_cls_pooling_takes_first_token() -> None:
    hidden = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    np.testing.assert_array_equal(pool(hidden, np.ones((2, 3), np.int64), "cls"), [[0, 1], [6, 7]])


def test_unknown_pooling_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(np.zeros((1, 1, 1), np.float32), np.ones((1, 1), np.int64), "max")
