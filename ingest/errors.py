"""The one exception type of the data layer: input that cannot be imported at all."""

from __future__ import annotations


class DataError(ValueError):
    """A source file cannot be read or has no usable rows.

    The message always names the file and the problem, and the row and field when one row
    is the cause. Rows that are merely bad are counted in a `CleaningReport` instead.
    """
