"""Units shared by the worker and the API: minutes and scores as exact millionths.

Minutes and scores are summed as integers of 1e-6 (``MICRO``), so a sum is exact
and the same in every order (float addition is not associative). The worker stores
them so; the API turns them back into the numbers users see.
"""

from __future__ import annotations

MICRO = 1_000_000  # minutes and scores are summed in millionths


def to_micro(value: float) -> int:
    """A minute or score value as an exact integer of millionths."""
    return round(value * MICRO)


def from_micro(value: int) -> float:
    """Millionths back to the number users see."""
    return value / MICRO
