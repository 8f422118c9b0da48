"""Batch assembly: concatenate requests along dimension 0, pad, and split the outputs back.

Only requests on the same model version and signature whose non-batch dimensions agree are
merged (the scheduler's batch key guarantees it).  With ``allowed_batch_sizes`` the batch is
padded up to the next allowed size by repeating its first row, as TF Serving's batching
session does, and the padding rows are dropped from the outputs.
"""

from __future__ import annotations

import bisect
from typing import Dict, List, Mapping, Sequence

import numpy as np

from serving.errors import internal


def padded_size(rows: int, allowed_batch_sizes: Sequence[int]) -> int:
    """The batch size a batch of ``rows`` rows is padded to.

    Args:
        rows: rows in the batch.
        allowed_batch_sizes: increasing sizes (empty: no padding).

    Returns:
        The smallest allowed size >= rows, or ``rows`` when none applies.
    """
    if not allowed_batch_sizes:
        return rows
    index = bisect.bisect_left(allowed_batch_sizes, rows)
    return allowed_batch_sizes[index] if index < len(allowed_batch_sizes) else rows


def merge_inputs(parts: Sequence[Mapping[str, np.ndarray]], pad_to: int = 0) -> Dict[str, np.ndarray]:
    """Concatenate the inputs of several requests along dimension 0.

    Args:
        parts: per request, input name -> array (same names, same non-batch dims).
        pad_to: total rows wanted; extra rows repeat the first row (0: no padding).

    Returns:
        Input name -> batched array.
    """
    if len(parts) == 1 and pad_to <= 0:
        return dict(parts[0])
    merged = {}
    for name in parts[0]:
        array = np.concatenate([p[name] for p in parts], axis=0)
        missing = pad_to - array.shape[0]
        if missing > 0:
            filler = np.repeat(array[:1], missing, axis=0)
            array = np.concatenate([array, filler], axis=0)
        merged[name] = array
    return merged


def split_outputs(outputs: Mapping[str, np.ndarray], rows: Sequence[int]) -> List[Dict[str, np.ndarray]]:
    """Split batched outputs back into per-request outputs.

    Args:
        outputs: output name -> array whose dimension 0 is at least ``sum(rows)``.
        rows: rows of each request, in batch order.

    Returns:
        One dict of outputs per request.

    Raises:
        ServingError: INTERNAL when an output does not have one row per input row.
    """
    total = sum(rows)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] < total:
            raise internal(f"output '{name}' has shape {list(array.shape)}, expected "
                           f"{total} rows (one per input row)")
    if len(rows) == 1 and all(a.shape[0] == total for a in outputs.values()):
        return [dict(outputs)]
    result = []
    start = 0
    for count in rows:
        result.append({name: array[start:start + count] for name, array in outputs.items()})
        start += count
    return result
