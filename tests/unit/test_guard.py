"""The invalid-ratio guard (``streams.guard``) and the ClickHouse fault switch (``infra.faults``).

The guard: a few dead letters never stop the stream; a window that is mostly
invalid does, only once it holds the minimum count, and good messages push
old bad ones out of the window. The switch: while its flag file exists every
call of the gated client fails like a client of a stopped server, and the
API's ``ping``/reads turn that into ``StoreUnavailable`` (503).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from infra import faults
from infra.settings import Settings
from streams.guard import InvalidRatioGuard, TooManyInvalid


@pytest.mark.parametrize(
    ("batches", "trips"),
    [
        pytest.param([(1000, 10)] * 5, False, id="one-percent-invalid"),
        pytest.param([(100, 50)], False, id="exactly-the-limit-is-allowed"),
        pytest.param([(100, 51)], True, id="just-over-the-limit"),
        pytest.param([(99, 99)], False, id="below-the-minimum-count"),
        pytest.param([(99, 99), (1, 1)], True, id="minimum-count-reached"),
        pytest.param([(5000, 5000)], True, id="one-big-invalid-batch"),
        pytest.param([(10, 10)] * 9 + [(1000, 0), (10, 10)], False, id="old-bad-ones-slid-out"),
        pytest.param([(1000, 0), (600, 600)], True, id="a-burst-fills-the-window"),
        pytest.param([(1000, 0), (400, 400)], False, id="a-smaller-burst-does-not"),
    ],
)
def test_guard_trips_only_over_the_limit(batches: list[tuple[int, int]], trips: bool) -> None:
    guard = InvalidRatioGuard(window=1000, max_ratio=0.5, min_count=100)
    with pytest.raises(TooManyInvalid) if trips else contextlib.nullcontext():
        for total, invalid in batches:
            guard.record(total, invalid)


def test_window_counts_stay_exact() -> None:
    guard = InvalidRatioGuard(window=10, max_ratio=1.0, min_count=1)
    assert guard.record(4, 4).invalid == 4
    assert (guard.record(8, 0).invalid, guard.status.total) == (2, 10)  # 2 bad ones left
    assert guard.record(25, 3).invalid == 3  # only the batch's last 10 remain
    assert guard.record(0, 0).total == 10


def test_error_says_what_happened() -> None:
    guard = InvalidRatioGuard(window=200, max_ratio=0.5, min_count=50)
    with pytest.raises(TooManyInvalid) as caught:
        guard.record(100, 90)
    error = caught.value
    assert (error.invalid, error.total, error.max_ratio) == (90, 100, 0.5)
    assert "90 of the last 100" in str(error) and "EDUKNIT_MAX_INVALID_RATIO" in str(error)


def test_ratio_one_turns_the_guard_off() -> None:
    guard = InvalidRatioGuard(window=100, max_ratio=1.0, min_count=1)
    assert guard.record(10_000, 10_000).ratio == 1.0


@pytest.mark.parametrize(
    ("window", "ratio", "minimum"), [(0, 0.5, 1), (10, 0, 1), (10, 1.5, 1), (10, 0.5, 11)]
)
def test_guard_refuses_bad_limits(window: int, ratio: float, minimum: int) -> None:
    with pytest.raises(ValueError):
        InvalidRatioGuard(window, ratio, minimum)


def test_guard_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        InvalidRatioGuard().record(5, 6)


def test_settings_validate_the_guard_and_refuse_faults_in_production() -> None:
    assert Settings(EDUKNIT_MAX_INVALID_RATIO=0.2).max_invalid_ratio == 0.2  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="INVALID_MIN_COUNT"):
        Settings(EDUKNIT_INVALID_WINDOW=10, EDUKNIT_INVALID_MIN_COUNT=20)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="EDUKNIT_FAULTS"):
        Settings(  # type: ignore[call-arg]
            EDUKNIT_FAULTS=True, EDUKNIT_ENV="production", EDUKNIT_JWT_SECRET="s" * 40
        )


def test_fault_switch_fails_every_call_while_the_flag_exists(
    ch_client: Client, tmp_path: Path
) -> None:
    from api.store import StoreUnavailable, event_applied, ping

    try:
        faults.install(ch_client, tmp_path)
        assert faults.install(ch_client, tmp_path) is ch_client  # idempotent
        ping(ch_client)
        faults.set_clickhouse_down(tmp_path, True)
        with pytest.raises(OperationalError, match="fault injected"):
            ch_client.command("SELECT 1")
        with pytest.raises(OperationalError, match="fault injected"):
            ch_client.query("SELECT 1")
        with pytest.raises(OperationalError, match="fault injected"):
            ch_client.insert("dead_letters", [["x"]], column_names=["reason"])
        with pytest.raises(StoreUnavailable):
            ping(ch_client)
        with pytest.raises(StoreUnavailable):
            event_applied(ch_client, "s", "e")
        faults.set_clickhouse_down(tmp_path, False)
        assert ch_client.command("SELECT 1") == 1
        assert not faults.flag_path(tmp_path).exists()
    finally:  # the session's client is shared by every test: take the gates off again
        faults.set_clickhouse_down(tmp_path, False)
        faults.uninstall(ch_client)
