import numpy as np

from server.collate import collate, padding_ratio


def test_pads_with_pad_id_and_masks() -> None:
    ids = [np.array([5, 6, 7], np.int64), np.array([8], np.int64)]
    out = collate(ids, pad_id=1, input_names=["input_ids", "attention_mask"])
    np.testing.assert_array_equal(out["input_ids"], [[5, 6, 7], [8, 1, 1]])
    np.testing.assert_array_equal(out["attention_mask"], [[1, 1, 1], [1, 0, 0]])
    assert list(out) == ["input_ids", "attention_mask"]
    assert out["input_ids"].dtype == np.int64


def test_token_type_ids_only_when_the_graph_wants_them() -> None:
    ids = [np.array([5, 6], np.int64)]
    out = collate(ids, 0, ["input_ids", "token_type_ids", "attention_mask"])
    assert list(out) == ["input_ids", "token_type_ids", "attention_mask"]
    np.testing.assert_array_equal(out["token_type_ids"], [[0, 0]])


def test_padding_ratio_counts_n_times_longest() -> None:
    assert padding_ratio([4, 4]) == 0.0
    assert padding_ratio([4, 1, 1]) == 1 - 6 / 12
    assert padding_ratio([]) == 0.0
