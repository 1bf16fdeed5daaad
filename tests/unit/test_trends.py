"""The trend rules: they fire on a real shift and stay quiet on noise."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

from maintkit.history.trendquery import window_length
from maintkit.history.trends import duration_trend, latency_trend, size_trend
from maintkit.model.portfolio import MaintenanceWindow

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _series(days: range, values: list[float]) -> list[tuple[datetime, float]]:
    """Four checks a day, values cycling, ``days`` ago."""
    out = []
    for index, ago in enumerate(days):
        for k in range(4):
            out.append((NOW - timedelta(days=ago, hours=k * 5), values[(index * 4 + k) % len(values)]))
    return out


def test_latency_fires_when_the_week_s_answers_all_slowed_down() -> None:
    rng = random.Random(1)
    base = _series(range(8, 35), [rng.gauss(300, 40) for _ in range(200)])
    week = _series(range(0, 7), [rng.gauss(900, 60) for _ in range(50)])
    trend = latency_trend(base + week, NOW)
    assert trend is not None and trend.kind == "latency" and "this week" in trend.message
    assert trend.value is not None and trend.value > 800


def test_latency_is_quiet_on_noise_and_on_one_slow_check() -> None:
    rng = random.Random(2)
    same = _series(range(0, 35), [rng.gauss(300, 60) for _ in range(300)])
    assert latency_trend(same, NOW) is None  # the same distribution all along
    spiky = [*same, (NOW - timedelta(hours=1), 9000.0), (NOW - timedelta(hours=2), 8000.0)]
    assert latency_trend(spiky, NOW) is None  # two outliers: p95 up, the median not
    fast = _series(range(8, 35), [20.0]) + _series(range(0, 7), [60.0])
    assert latency_trend(fast, NOW) is None  # three times slower, yet 40 ms: no news
    few = [*_series(range(8, 35), [300.0]), (NOW - timedelta(hours=1), 2000.0)]
    assert latency_trend(few, NOW) is None  # one check this week is not a trend


def test_backup_size_drop_and_jump() -> None:
    day = NOW - timedelta(days=1)
    dropped = size_trend([(day, 400 * 2**20), (NOW, 190 * 2**20)])
    assert dropped is not None and "check that no data was lost" in dropped.message and dropped.value == 0.475
    jumped = size_trend([(day, 100 * 2**20), (NOW, 250 * 2**20)])
    assert jumped is not None and "2.5 times" in jumped.message
    assert size_trend([(day, 100 * 2**20), (NOW, 70 * 2**20)]) is None  # 70 %: within the range
    assert size_trend([(NOW, 100)]) is None


def test_snapshot_duration_projects_the_day_it_no_longer_fits() -> None:
    window = window_length(MaintenanceWindow(time(2), time(5), "UTC"))  # 3 h
    assert window == 3 * 3600
    assert window_length(MaintenanceWindow(time(23), time(1), "UTC")) == 2 * 3600  # across midnight
    growing = [(NOW - timedelta(days=20 - d), 6000.0 + 200 * d) for d in range(21)]  # +200 s a day
    trend = duration_trend(growing, window, NOW)
    assert trend is not None and trend.date == (NOW + timedelta(days=4)).date().isoformat()  # 10000 s now
    assert "no longer fit the 180 min window" in trend.message
    flat = [(NOW - timedelta(days=20 - d), 6000.0 + (50 if d % 2 else -50)) for d in range(21)]
    assert duration_trend(flat, window, NOW) is None
    slow = [(NOW - timedelta(days=20 - d), 1000.0 + 10 * d) for d in range(21)]
    assert duration_trend(slow, window, NOW) is None  # it reaches 3 h only in years
    assert duration_trend(growing, None, NOW) is None
