"""The load client's settler: a stream's after-work waits for idle moments, and is never lost."""

from __future__ import annotations

import gevent
import pytest

from chatconform.load.settle import Settler


def busy_reader(order: list[str], reads: int) -> gevent.Greenlet:
    """Stands for streams being read: ready again at once after each read, ``reads`` times."""

    def run() -> None:
        for i in range(reads):
            order.append(f"read {i}")
            gevent.sleep(0)

    return gevent.spawn(run)


def test_work_waits_until_no_read_is_ready_then_runs_in_order() -> None:
    order: list[str] = []
    settler = Settler(bound=8)
    reader = busy_reader(order, 20)
    settler.submit(lambda: order.append("work 1"))
    settler.submit(lambda: order.append("work 2"))
    assert settler.pending == 2
    assert order == []  # nothing ran inline
    gevent.joinall([reader], timeout=5)
    gevent.sleep(0.05)
    assert order[:20] == [f"read {i}" for i in range(20)]
    assert order[20:] == ["work 1", "work 2"]
    assert settler.pending == 0


def test_work_runs_between_reads_when_the_loop_is_idle() -> None:
    """Idle means no read ready, not no stream open: a reader that waits lets work through."""
    order: list[str] = []
    settler = Settler(bound=8)

    def slow_reader() -> None:
        for i in range(3):
            order.append(f"read {i}")
            gevent.sleep(0.02)  # waiting on its socket: the loop is idle meanwhile

    reader = gevent.spawn(slow_reader)
    gevent.sleep(0)
    settler.submit(lambda: order.append("work"))
    gevent.joinall([reader], timeout=5)
    assert order.index("work") < order.index("read 2")


def test_past_the_bound_the_caller_does_the_work_itself() -> None:
    order: list[str] = []
    settler = Settler(bound=2)
    for i in range(3):
        settler.submit(lambda i=i: order.append(f"work {i}"))
    assert order == ["work 2"]  # the queue was full: done inline, at once
    assert settler.pending == 2
    settler.flush()
    assert order == ["work 2", "work 0", "work 1"]
    assert settler.pending == 0


def test_flush_and_hurry_leave_nothing_behind() -> None:
    order: list[str] = []
    settler = Settler(bound=8)
    reader = busy_reader(order, 200)
    settler.submit(lambda: order.append("queued"))
    settler.hurry()  # the run stops: no waiting for idle moments
    gevent.sleep(0)
    gevent.sleep(0)
    assert "queued" in order
    assert order.index("queued") < 10  # not after the 200 reads
    settler.submit(lambda: order.append("late"))  # once hurried, done inline
    assert order[-1] == "late"
    assert settler.pending == 0
    reader.kill()


def test_a_failing_work_is_logged_and_the_next_runs(caplog: pytest.LogCaptureFixture) -> None:
    order: list[str] = []
    settler = Settler(bound=8)

    def broken() -> None:
        raise ValueError("a bug in one stream's bookkeeping")

    settler.submit(broken)
    settler.submit(lambda: order.append("next"))
    gevent.sleep(0.05)
    assert order == ["next"]
    assert settler.pending == 0
    assert "post-stream work failed" in caplog.text


def test_a_flush_while_the_drainer_waits_for_idle_leaves_the_count_right() -> None:
    """The run's end flushes while the drainer sits in gevent.idle(): it must not then take
    from an empty queue (an IndexError, and a pending count gone wrong)."""
    order: list[str] = []
    settler = Settler(bound=8)
    reader = busy_reader(order, 50)  # keeps the loop from going idle
    settler.submit(lambda: order.append("work"))
    gevent.sleep(0)  # the drainer starts and waits for idle
    settler.flush()
    assert order.count("work") == 1
    assert settler.pending == 0
    gevent.joinall([reader], timeout=5)
    gevent.sleep(0.05)  # the drainer wakes from idle to an empty queue
    assert order.count("work") == 1
    assert settler.pending == 0
    assert settler._runner is not None
    assert not settler._runner.dead, "the drainer died (took from an empty queue)"
