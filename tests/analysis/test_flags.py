"""The flag every stop of a run goes through (analysis.engine.execution.Flag): each waiter wakes when it is set,
a wait with a timeout ends unset, and a stopped run wakes its waits at once."""

from __future__ import annotations

import threading
import time

from analysis.engine.execution import Flag, Stopped, StopToken


def test_every_waiter_wakes_when_the_flag_is_set_once_or_twice():
    flag, woke = Flag(), []
    waiters = [threading.Thread(target=lambda: woke.append(flag.wait())) for _ in range(50)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.1)
    assert woke == [] and not flag.is_set()
    setters = [threading.Thread(target=flag.set) for _ in range(4)]
    for setter in setters:
        setter.start()
    for thread in (*setters, *waiters):
        thread.join(2)
    assert woke == [True] * 50 and flag.is_set() and flag.wait() and flag.wait(0)


def test_a_wait_with_a_timeout_ends_unset():
    flag = Flag()
    started = time.monotonic()
    assert flag.wait(0.05) is False and flag.wait(0) is False
    assert 0.04 <= time.monotonic() - started < 1


def test_a_stop_wakes_a_run_waiting_on_its_call():
    from concurrent.futures import Future

    token, never = StopToken(), Future()
    threading.Timer(0.05, token.stop, args=("canceled",)).start()
    started = time.monotonic()
    try:
        token.result(never)
    except Stopped as stopped:
        assert stopped.reason == "canceled"
    else:
        raise AssertionError("the wait did not end")
    assert time.monotonic() - started < 1
