"""monitor/writes.run_bounded: the cycle's writes side by side, at most `size` at once, all
done when it returns, one result per task in order, a failure as that task's result."""

from __future__ import annotations

import threading
import time

import pytest
from onnxops.monitor.writes import Stopped, run_bounded


def test_runs_size_tasks_at_once_and_waits_for_all() -> None:
    barrier = threading.Barrier(16, timeout=10)  # passes only if 16 run at the same time
    done: list[int] = []

    def task(i: int) -> int:
        barrier.wait()
        done.append(i)
        return i * 2

    results = run_bounded([lambda i=i: task(i) for i in range(32)], 16)
    assert results == [i * 2 for i in range(32)]
    assert sorted(done) == list(range(32))  # nothing left running after the call


def test_never_more_than_size_in_flight() -> None:
    lock = threading.Lock()
    now, most = 0, 0

    def task() -> None:
        nonlocal now, most
        with lock:
            now += 1
            most = max(most, now)
        time.sleep(0.02)
        with lock:
            now -= 1

    run_bounded([task] * 40, 4)
    assert most == 4


def test_a_failure_is_that_tasks_result() -> None:
    def bad() -> int:
        raise RuntimeError("apiserver said no")

    first, second, third = run_bounded([lambda: 1, bad, lambda: 3], 8)
    assert (first, third) == (1, 3)
    assert isinstance(second, RuntimeError)


@pytest.mark.parametrize("size", [1, 16])
def test_size_one_is_one_after_another_in_the_callers_thread(size: int) -> None:
    threads: list[int] = []
    run_bounded([lambda: threads.append(threading.get_ident())] * 5, size)
    in_caller = threads == [threading.get_ident()] * 5
    assert in_caller is (size == 1)


@pytest.mark.parametrize("size", [1, 4])
def test_once_stopping_no_further_task_starts(size: int) -> None:
    stop = threading.Event()
    ran: list[int] = []

    def task(i: int) -> int:
        ran.append(i)
        if i == 1:
            stop.set()  # SIGTERM arrives while the second task runs
        time.sleep(0.01)
        return i

    results = run_bounded([lambda i=i: task(i) for i in range(100)], size, stop)
    # What was running finishes; of the rest, none starts.
    assert len(ran) <= 1 + size
    assert [r for r in results if not isinstance(r, Stopped)] == sorted(ran)
    assert sum(isinstance(r, Stopped) for r in results) == 100 - len(ran)
