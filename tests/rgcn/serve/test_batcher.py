"""rgcn/serve/batcher.py: posts arriving together share a model batch; a bad post fails alone."""
import asyncio
import time

import pytest

from rgcn.serve.batcher import Busy, MicroBatcher


def run(coro):
    return asyncio.run(coro)


def tagger(log, pause=0.0):
    def tag_many(posts, batch_size=64):
        log.append(list(posts))
        time.sleep(pause)
        for p in posts:
            if p == "bad":
                raise ValueError("bad post")
            yield p.upper()
    return tag_many


def test_waiting_posts_form_batches_of_at_most_max_batch():
    log = []

    async def go():
        b = MicroBatcher(tagger(log, pause=0.02), max_batch=4, max_wait_ms=50)
        await b.start()
        out = await asyncio.gather(*(b.submit(f"p{i}") for i in range(10)))
        await b.stop()
        return out

    out = run(go())
    assert [r for r, _ in out] == [f"P{i}" for i in range(10)]
    assert [len(x) for x in log] == [4, 4, 2]
    assert [t.batch_size for _, t in out] == [4] * 8 + [2] * 2


def test_a_lone_post_waits_at_most_max_wait():
    log = []

    async def go():
        b = MicroBatcher(tagger(log), max_batch=32, max_wait_ms=30)
        await b.start()
        t0 = time.perf_counter()
        res, timing = await b.submit("x")
        waited = time.perf_counter() - t0
        await b.stop()
        return res, timing, waited

    res, timing, waited = run(go())
    assert res == "X" and timing.batch_size == 1 and 0.025 <= waited < 0.5


def test_a_bad_post_fails_alone():
    log = []

    async def go():
        b = MicroBatcher(tagger(log), max_batch=8, max_wait_ms=20)
        await b.start()
        out = await asyncio.gather(b.submit("a"), b.submit("bad"), b.submit("c"), return_exceptions=True)
        again = await b.submit("d")
        await b.stop()
        return out, again

    out, again = run(go())
    assert out[0][0] == "A" and isinstance(out[1], ValueError) and out[2][0] == "C"
    assert again[0] == "D" and len(log[0]) == 3             # tried together first


def test_a_full_queue_says_busy():
    async def go():
        b = MicroBatcher(tagger([], pause=0.2), max_batch=1, max_wait_ms=0, max_queue=2)
        await b.start()
        tasks = []
        for i in range(3):
            tasks.append(asyncio.create_task(b.submit(str(i))))
            await asyncio.sleep(0.02)                      # the first goes to the model, two wait
        assert b.waiting == 2
        with pytest.raises(Busy):
            await b.submit("x")
        await asyncio.gather(*tasks)
        await b.stop()

    run(go())
