"""The machine's CPU share as each reader measures it, and the collector that reports it."""

from __future__ import annotations

from typing import Any

import psutil
import pytest

from modelpilot.monitoring.system import MachineCpu, SystemCollector


class FakeCpu:
    """The machine's CPU seconds (as ``psutil.cpu_times`` gives them), moved on only by hand."""

    def __init__(self, busy: float, idle: float) -> None:
        self.busy, self.idle = busy, idle
        self._real = psutil.cpu_times()  # the platform's fields, all set to 0 when read

    def advance(self, busy: float, idle: float) -> None:
        self.busy += busy
        self.idle += idle

    def __call__(self) -> Any:
        zero = dict.fromkeys(self._real._fields, 0.0)
        return self._real._replace(**{**zero, "user": self.busy, "idle": self.idle})


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_reader_measures_from_its_own_last_reading() -> None:
    cpu, clock = FakeCpu(busy=0, idle=0), FakeClock()
    dashboard = MachineCpu(read=cpu, clock=clock)
    scrape = MachineCpu(read=cpu, clock=clock)
    cpu.advance(busy=1, idle=3)
    clock.now += 2
    assert dashboard.share() == pytest.approx(0.25)
    cpu.advance(busy=3, idle=1)
    clock.now += 2
    # The dashboard's reading did not start a new interval for the scrape.
    assert scrape.share() == pytest.approx(0.5)
    assert dashboard.share() == pytest.approx(0.75)


def test_a_reading_right_after_another_repeats_it_rather_than_measure_noise() -> None:
    cpu, clock = FakeCpu(busy=0, idle=0), FakeClock()
    reader = MachineCpu(min_seconds=1.0, read=cpu, clock=clock)
    cpu.advance(busy=1, idle=3)
    clock.now += 1
    assert reader.share() == pytest.approx(0.25)
    cpu.advance(busy=0.01, idle=0)  # a few milliseconds, all of them busy
    clock.now += 0.01
    assert reader.share() == pytest.approx(0.25)
    cpu.advance(busy=0.99, idle=2)
    clock.now += 1
    assert reader.share() == pytest.approx(1 / 3)  # from the last measurement on


def test_readings_before_a_whole_interval_are_the_average_since_boot() -> None:
    cpu, clock = FakeCpu(busy=30, idle=70), FakeClock()
    reader = MachineCpu(read=cpu, clock=clock)
    cpu.advance(busy=1, idle=0)
    assert reader.share() == pytest.approx(0.3)


def test_the_collector_keeps_its_own_baseline_whoever_else_reads_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Busy a quarter of the time since boot, and since: whatever interval the collector's
    # reading covers, a quarter is right. Sharing psutil's "since the last call", it read 0:
    # the other reader had just taken the interval.
    cpu = FakeCpu(busy=1, idle=3)
    monkeypatch.setattr(psutil, "cpu_times", cpu)
    collector = SystemCollector()
    cpu.advance(busy=1, idle=3)
    psutil.cpu_percent(None)  # someone else in the process
    values = {
        sample.name: sample.value for family in collector.collect() for sample in family.samples
    }
    assert values["modelpilot_system_cpu_utilization_ratio"] == pytest.approx(0.25)
