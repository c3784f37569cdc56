"""The worker's batched take (jobs.worker.workers.TAKE_WAITING_SCRIPT) on the suite's real Redis: the ids it
returns are the ones a BLPOP over the same queues would serve one after another, never more than asked, and with
one queue they are moved to RQ's intermediate list as RQ's own one-queue dequeue moves them."""

from __future__ import annotations

from jobs.worker.workers import TAKE_WAITING_SCRIPT


def take(redis, keys: list[str], count: int, mode: str) -> list[tuple[str, str]]:
    taken = redis.eval(TAKE_WAITING_SCRIPT, len(keys), *keys, count, mode)
    return [(key.decode(), job_id.decode()) for key, job_id in zip(taken[::2], taken[1::2])]


def test_ids_come_in_queue_priority_order_up_to_the_count(clean_redis):
    clean_redis.rpush("rq:queue:high", "h1", "h2")
    clean_redis.rpush("rq:queue:default", "d1", "d2", "d3")
    clean_redis.rpush("rq:queue:low", "l1")
    keys = ["rq:queue:high", "rq:queue:default", "rq:queue:low"]
    assert take(clean_redis, keys, 4, "pop") == [
        ("rq:queue:high", "h1"), ("rq:queue:high", "h2"), ("rq:queue:default", "d1"), ("rq:queue:default", "d2")]
    # The rest stay where they were, in order, for the next take or another worker.
    assert clean_redis.lrange("rq:queue:default", 0, -1) == [b"d3"]
    assert clean_redis.lrange("rq:queue:low", 0, -1) == [b"l1"]
    assert take(clean_redis, keys, 10, "pop") == [("rq:queue:default", "d3"), ("rq:queue:low", "l1")]
    assert take(clean_redis, keys, 10, "pop") == []


def test_one_queue_moves_its_ids_to_the_intermediate_list(clean_redis):
    clean_redis.rpush("rq:queue:default", "d1", "d2", "d3")
    keys = ["rq:queue:default", "rq:queue:default:intermediate"]
    assert take(clean_redis, keys, 2, "move") == [("rq:queue:default", "d1"), ("rq:queue:default", "d2")]
    assert clean_redis.lrange("rq:queue:default:intermediate", 0, -1) == [b"d1", b"d2"]
    assert clean_redis.lrange("rq:queue:default", 0, -1) == [b"d3"]
