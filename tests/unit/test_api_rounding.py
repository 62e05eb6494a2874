"""averageProgress rounds the exact mean half to even (README: 6.25 -> 6.2).

Found by the ingest benchmark's reference check: the mean of 33.3 and 18.8 is
exactly 26.05, but the float 26.05 is a little above the half, so
``round(26.05, 1)`` gave 26.1 where the reference (and the README's rule) say 26.0.
"""

from __future__ import annotations

import pytest

from api.metrics import exact_mean


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([33.3, 18.8], 26.0),  # exactly 26.05: half to even
        ([6.2, 6.3], 6.2),  # exactly 6.25
        ([6.3, 6.4], 6.4),  # exactly 6.35
        ([100.0, 50.0, 0.1], 50.0),  # 50.0333...
        ([12.5], 12.5),
        ([], 0.0),
    ],
)
def test_exact_mean_rounds_exact_halves_to_even(values: list[float], expected: float) -> None:
    assert exact_mean(values) == expected
