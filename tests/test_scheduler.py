"""Continuous batching: jobs join and leave at every step and still give exactly what they give alone."""

import threading

import pytest
import torch
from test_engine import alone, backend, hf, make_engine, model, ragged_requests, same  # noqa: F401
from test_mounts import card

from lifecard.engine.generate import Completion, Request
from lifecard.engine.sampling import SamplingParams
from lifecard.engine.scheduler import Job, QueueFull, Scheduler


def collect(job_results: dict, job: Job) -> Job:
    def on_done(out: Completion | None, err: BaseException | None) -> None:
        job_results[job.id] = (out, err)

    job.on_done = on_done
    return job


def test_jobs_joining_mid_decode_equal_each_alone(model, backend):  # noqa: F811
    engine = make_engine(model, backend)
    requests = ragged_requests(engine)
    want = [alone(engine, r) for r in requests]
    scheduler = Scheduler(engine, max_rows=3, max_len=64)  # fewer rows than jobs: some wait
    results: dict = {}
    jobs = []
    for request in requests:  # one new job every two steps, while others are mid-decode
        jobs.append(scheduler.submit(collect(results, Job(request))))
        scheduler.step()
        scheduler.step()
    while scheduler.running or scheduler.waiting:
        scheduler.step()
    for job, expected in zip(jobs, want, strict=True):
        out, err = results[job.id]
        assert err is None and same(out, expected)
    assert scheduler.stats.finished == len(requests)


def test_streamed_text_is_the_completion(model, backend):  # noqa: F811
    engine = make_engine(model, backend)
    request = ragged_requests(engine)[0]
    pieces: list[str] = []
    results: dict = {}
    job = collect(results, Job(request, on_text=pieces.append))
    scheduler = Scheduler(engine, max_rows=2, max_len=64)
    scheduler.submit(job)
    while scheduler.running or scheduler.waiting:
        scheduler.step()
    assert "".join(pieces) == results[job.id][0].text


def test_a_cancelled_job_frees_its_row_and_the_rest_run_on(model, backend):  # noqa: F811
    engine = make_engine(model, backend)
    requests = ragged_requests(engine)[:3]
    want = [alone(engine, r) for r in requests]
    scheduler = Scheduler(engine, max_rows=3, max_len=64)
    results: dict = {}
    jobs = [scheduler.submit(collect(results, Job(r))) for r in requests]
    scheduler.step()
    scheduler.cancel(jobs[0])
    scheduler.step()
    assert jobs[0] not in scheduler.running and jobs[0].id not in results
    while scheduler.running:
        scheduler.step()
    for job, expected in zip(jobs[1:], want[1:], strict=True):
        assert same(results[job.id][0], expected)
    assert scheduler.stats.cancelled == 1


def test_the_queue_is_bounded(model, backend):  # noqa: F811
    engine = make_engine(model, backend)
    scheduler = Scheduler(engine, max_rows=1, max_queue=2, max_len=64)
    request = Request(engine.tokenizer.encode("hi"), SamplingParams(temperature=0, max_tokens=2))
    scheduler.submit(Job(request))
    scheduler.submit(Job(request))
    with pytest.raises(QueueFull, match="retry"):
        scheduler.submit(Job(request))


def test_cards_per_job_mount_and_leave(model, backend):  # noqa: F811
    engine = make_engine(model, backend)
    x, y = card(engine.base, "x", seed=1, steer=True), card(engine.base, "y", rank=2, seed=2)
    prompt = engine.tokenizer.encode("the quick brown fox")
    params = SamplingParams(temperature=0, max_tokens=10)
    mixes = [(), ((x, 1.0),), ((y, 0.5),), ((x, 0.3), (y, 1.0)), ((x, 1.0),)]
    want = []
    for mix in mixes:
        slot = engine.mount(list(mix)).slot if mix else 0
        want.append(alone(engine, Request(prompt, params, slot)))
        if slot:
            engine.unmount(slot)
    empty = engine.bank.nbytes
    scheduler = Scheduler(engine, max_rows=4, max_len=64)
    results: dict = {}
    jobs = [scheduler.submit(collect(results, Job(Request(prompt, params), mix))) for mix in mixes]
    while scheduler.running or scheduler.waiting:
        scheduler.step()
    for job, expected in zip(jobs, want, strict=True):
        assert same(results[job.id][0], expected)
    assert len({w.tokens[0] for w in want}) > 1  # the cards do change the output
    assert not list(engine.mounts) and engine.bank.nbytes == empty  # every mount released


def test_a_bad_job_fails_alone(model, backend):  # noqa: F811
    engine = make_engine(model, backend)
    scheduler = Scheduler(engine, max_rows=2, max_len=64)
    results: dict = {}
    good = Request(engine.tokenizer.encode("hello"), SamplingParams(temperature=0, max_tokens=4))
    bad = scheduler.submit(collect(results, Job(Request([5] * 80, SamplingParams(max_tokens=2)))))
    ok = scheduler.submit(collect(results, Job(good)))
    while scheduler.running or scheduler.waiting:
        scheduler.step()
    assert isinstance(results[bad.id][1], ValueError) and "context" in str(results[bad.id][1])
    assert same(results[ok.id][0], alone(engine, good))


def test_the_worker_thread_serves_concurrent_submitters(model, backend):  # noqa: F811
    engine = make_engine(model, backend)
    requests = ragged_requests(engine)
    want = [alone(engine, r) for r in requests]
    scheduler = Scheduler(engine, max_rows=4, max_len=64)
    scheduler.start()
    results: dict = {}
    done = threading.Semaphore(0)
    jobs: list[Job] = [None] * len(requests)  # type: ignore[list-item]

    def submit(i: int) -> None:
        job = Job(requests[i])
        job.on_done = lambda out, err: (results.__setitem__(i, (out, err)), done.release())
        jobs[i] = scheduler.submit(job)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        for _ in requests:
            assert done.acquire(timeout=60)
    finally:
        scheduler.stop()
    for i, expected in enumerate(want):
        assert results[i][1] is None and same(results[i][0], expected)
    torch.testing.assert_close(torch.tensor(scheduler.stats.finished), torch.tensor(len(requests)))
