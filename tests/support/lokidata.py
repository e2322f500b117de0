"""Log lines for the Loki stand-in whose error count per minute a detector can score: a few
errors a minute (the same every hour) and one minute with a burst."""

from __future__ import annotations

from tests.support.fakeloki import FakeLoki

#: Whole hours, in the past: the stand-in answers for them and nothing about now matters.
START = 1_700_000_000 // 3600 * 3600
MINUTES = 180
BURST_MINUTE = 150
QUERY = 'sum(count_over_time({app="checkout"} |= "error" [1m]))'


def errors_in(minute: int) -> int:
    return 40 if minute == BURST_MINUTE else 2 + (minute * 7) % 3


def load(fake: FakeLoki) -> None:
    """``MINUTES`` minutes of checkout lines from ``START``: ``errors_in(m)`` errors and two
    ordinary lines per minute (all inside the minute, so a ``[1m]`` count at a minute's end
    counts that minute)."""
    for m in range(MINUTES):
        base = (START + m * 60) * 10**9
        for i in range(errors_in(m)):
            fake.add(
                {"app": "checkout", "level": "error"},
                base + (i + 1) * 10**9,
                f"error: payment declined #{i}",
            )
        for i in range(2):
            fake.add({"app": "checkout", "level": "info"}, base + (30 + i) * 10**9, "checkout ok")


def burst_at() -> float:
    """Unix seconds of the step whose ``[1m]`` count holds the burst: the end of its minute
    (Loki counts the range ``(t - 1m, t]``)."""
    return float(START + (BURST_MINUTE + 1) * 60)
