"""The trend rules: they fire on a real shift and stay quiet on noise."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

from maintkit.history.trendquery import window_length
from maintkit.history.trends import disk_trend, duration_trend, latency_trend, size_trend
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


GIB = 1024**3


def _disk(free_by_day: list[float], total: int = 100 * GIB) -> list[tuple[datetime, int, int]]:
    """One reading a night, the last one today, free bytes as given (oldest first)."""
    days = len(free_by_day)
    return [(NOW - timedelta(days=days - 1 - i), int(free), total) for i, free in enumerate(free_by_day)]


def test_disk_space_names_the_day_it_runs_out_at_the_current_rate() -> None:
    rng = random.Random(3)
    series = _disk([30 * GIB - day * GIB + rng.gauss(0, 0.1 * GIB) for day in range(14)])  # 1 GiB a day
    trend = disk_trend(series, NOW, "the disk of the files on web1 (/)")
    assert trend is not None and trend.kind == "disk-space"
    assert trend.date is not None and "2026-12-16" <= trend.date <= "2026-12-18"  # ~17 GiB left
    assert trend.message.startswith("the disk of the files on web1 (/) fills up: 16.9 GiB free, 17% of")
    assert "1.0 GiB less a day: at this rate it is full on 2026-12-17" in trend.message
    assert trend.value is not None and 0.9 * GIB < trend.value < 1.1 * GIB


def test_disk_space_stays_quiet_on_noise_few_points_a_far_date_or_a_growing_disk() -> None:
    rng = random.Random(4)
    noisy = _disk([20 * GIB + rng.gauss(0, 3 * GIB) for _ in range(20)])  # up and down around flat
    assert disk_trend(noisy, NOW) is None
    # the last two nights dropped 6 GiB after a flat noisy month: one bad pair is not a trend
    flat_then_drop = _disk([20 * GIB + rng.gauss(0, 2 * GIB) for _ in range(18)] + [14 * GIB, 14 * GIB])
    assert disk_trend(flat_then_drop, NOW) is None
    assert disk_trend(_disk([30 * GIB - d * GIB for d in range(4)]), NOW) is None  # 4 points
    assert disk_trend(_disk([500 * GIB - d * GIB for d in range(20)], 1000 * GIB), NOW) is None  # a year
    assert disk_trend(_disk([10 * GIB + d * GIB for d in range(20)]), NOW) is None  # freed
    hourly = [(NOW - timedelta(hours=h), 30 * GIB + h * GIB, 100 * GIB) for h in range(10, -1, -1)]
    assert disk_trend(hourly, NOW) is None  # ten readings within a day: less than three days


def test_disk_space_a_steady_fall_fires_even_with_a_perfect_line() -> None:
    trend = disk_trend(_disk([10 * GIB - d * GIB // 2 for d in range(8)]), NOW)  # 6.5 GiB left
    assert trend is not None and trend.date == "2026-12-13"
