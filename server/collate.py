"""Turning a batch of token-id arrays into padded model inputs.

Rows are padded to the batch's longest input with the tokenizer's pad id (some models
derive position ids from ``input_ids != pad_id``, so the pad id must be the real one) and
masked out with ``attention_mask``; results come back row-aligned with the batch, and the
batcher scatters each row to its request and index, which un-permutes the length grouping.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


def collate(ids: Sequence[I64], pad_id: int, input_names: Sequence[str]) -> dict[str, I64]:
    """Pad ``ids`` into ``[n, longest]`` int64 arrays named as the graph expects."""
    lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
    width = int(lengths.max()) if len(ids) else 0
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
    mask = (np.arange(width, dtype=np.int64)[None, :] < lengths[:, None]).astype(np.int64)
    arrays = {"input_ids": input_ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        arrays["token_type_ids"] = np.zeros_like(input_ids)
    return {name: arrays[name] for name in input_names}


def padding_ratio(lengths: Sequence[int]) -> float:
    """Share of a padded batch that is padding: 1 - sum(lengths) / (n x longest)."""
    if not lengths:
        return 0.0
    return 1.0 - sum(lengths) / (len(lengths) * max(lengths))
