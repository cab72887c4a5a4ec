"""The model worker: callers on many threads, one model thread, texts merged across callers, each caller's own usage
and errors, and a clean close."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from embedops.errors import InputError, ModelError
from embedops.models import ModelWorker, load_worker
from embedops.protocols import Encoder, Usage

LONG = "Transformers truncate long inputs at the model's maximum length, special tokens included. " * 40


def _run_threads(n: int, target) -> list[BaseException]:
    """Start n threads on target(i) together; return what they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def wrapped(i: int) -> None:
        start.wait()
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a caller never returned"
    return errors


@pytest.fixture(scope="module")
def sentences(sts_test) -> list[str]:
    """64 distinct STS-B test sentences."""
    return list(dict.fromkeys(sts_test.sentences1))[:64]


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_eight_threads_through_one_worker_equal_one_thread_and_merge(backend, encoder, onnx_encoder, sentences):
    enc = encoder if backend == "torch" else onnx_encoder
    ref = enc.encode(sentences)
    got = np.zeros_like(ref)
    with ModelWorker(enc, max_wait_ms=20) as worker:

        def call(i: int) -> None:
            for j in range(8):  # one text per call, as request handlers send them
                got[i * 8 + j] = worker.encode([sentences[i * 8 + j]])[0]

        assert _run_threads(8, call) == []
        assert worker.batches_run < 64  # 64 calls, fewer model batches: concurrent callers were merged
        assert max(worker.batch_sizes) > 1
        metrics = worker.metrics()
        assert metrics["queue_depth"] == 0 and metrics["requests"] == 64 and metrics["texts"] == 64
    assert np.min(np.sum(got * ref, axis=1)) >= 0.99999


def test_each_caller_gets_its_own_usage_from_a_shared_batch(encoder, sentences):
    lengths = encoder.token_lengths(sentences[:8])
    usages: dict[int, Usage] = {}
    with ModelWorker(encoder, max_wait_ms=50) as worker:

        def call(i: int) -> None:
            # Caller 3 sends a text that is truncated, in its position 1; the others send short texts only.
            texts = [sentences[i], LONG] if i == 3 else [sentences[i]]
            usages[i] = worker.encode_with_usage(texts)[1]

        assert _run_threads(8, call) == []
        assert worker.batches_run < 8  # they really shared batches
    assert usages[3].inputs == 2 and usages[3].truncated == 1 and usages[3].truncated_indices == (1,)
    assert usages[3].tokens == int(lengths[3]) + encoder.max_tokens
    for i in set(range(8)) - {3}:
        assert usages[i] == Usage(1, int(lengths[i]), 0, (), usages[i].seconds)


def test_a_bad_input_fails_only_its_own_caller(onnx_encoder, sentences):
    results: dict[int, np.ndarray] = {}
    with ModelWorker(onnx_encoder, max_wait_ms=20) as worker:

        def call(i: int) -> None:
            texts = [sentences[i], "   "] if i == 5 else [sentences[i], sentences[i + 8]]
            results[i] = worker.encode(texts)

        errors = _run_threads(8, call)
        assert worker.encode(["still serving"]).shape == (1, 384)
    assert len(errors) == 1 and isinstance(errors[0], InputError) and "input 1 is empty" in str(errors[0])
    assert sorted(results) == [0, 1, 2, 3, 4, 6, 7]
    ref = onnx_encoder.encode([sentences[0], sentences[8]])
    assert np.min(np.sum(results[0] * ref, axis=1)) >= 0.99999


def test_the_worker_is_an_encoder(onnx_encoder, sentences):
    with ModelWorker(onnx_encoder) as worker:
        assert isinstance(worker, Encoder)
        assert worker.spec() == onnx_encoder.spec() and worker.fingerprint == onnx_encoder.fingerprint
        assert (worker.name, worker.dimension, worker.output_dimension) == ("all-MiniLM-L6-v2", 384, 384)
        assert worker.max_tokens == 256 and worker.modality == "text"
        assert worker.tokenizer is onnx_encoder.tokenizer  # what chunking needs reads through
        vecs, usage = worker.encode_with_usage(sentences[:3], kind="query")
        assert vecs.shape == (3, 384) and usage.inputs == 3
        codes = worker.encode(sentences[:3], precision="int8")
        assert np.array_equal(codes, onnx_encoder.encode(sentences[:3], precision="int8"))
        assert worker.encode([]).shape == (0, 384)


def test_close_stops_the_thread_and_fails_waiting_callers(onnx_encoder, sentences):
    worker = ModelWorker(onnx_encoder, max_batch_size=8)
    outcome: dict[str, object] = {}

    def big() -> None:
        try:
            outcome["big"] = worker.encode(sentences * 20)  # 160 batches of 8: still running when closed
        except ModelError as exc:
            outcome["big"] = exc

    caller = threading.Thread(target=big)
    caller.start()
    while worker.batches_run < 1:
        threading.Event().wait(0.005)
    worker.close()
    caller.join(timeout=60)
    assert not caller.is_alive()
    assert isinstance(outcome["big"], ModelError) and "closed" in str(outcome["big"])
    assert not worker._thread.is_alive() and worker.closed and worker.metrics()["closed"]
    worker.close()  # idempotent
    with pytest.raises(ModelError, match="closed"):
        worker.encode(["after close"])
    with ModelWorker(onnx_encoder) as inner:
        inner.encode(["in the block"])
    assert inner.closed


def test_load_worker_by_name():
    with load_worker(backend="onnx", threads=2, max_batch_size=16) as worker:
        assert worker.max_batch_size == 16 and worker.encoder.threads == 2
        assert worker.encode(["loaded by name"]).shape == (1, 384)
    with ModelWorker.load(backend="onnx", threads=2, max_wait_ms=1) as worker:
        assert worker.max_wait_ms == 1 and worker.encode(["also"]).shape == (1, 384)


def test_a_caller_who_gives_up_has_its_queued_texts_dropped(onnx_encoder, sentences):
    """Inside cancel_when(event), setting the event while the texts wait in the queue drops them before the model:
    the caller gets RequestCancelled, the model never runs them, and the worker serves the next caller normally."""
    from embedops.models import RequestCancelled, cancel_when

    worker = ModelWorker(onnx_encoder, max_batch_size=8)
    blocker = [f"{s} {LONG}" for s in sentences[:32]]  # 32 texts of 256 tokens in one round: a second or more
    give_up = threading.Event()
    outcome: dict[str, object] = {}

    def busy() -> None:
        outcome["busy"] = worker.encode(blocker)

    def impatient() -> None:
        with cancel_when(give_up):
            try:
                outcome["impatient"] = worker.encode(sentences[:40])
            except RequestCancelled as exc:
                outcome["impatient"] = exc

    first = threading.Thread(target=busy)
    first.start()
    while worker.metrics()["queue_depth"] or not worker.batches_run and worker.metrics()["in_flight_requests"] < 1:
        threading.Event().wait(0.002)  # the blocker's round is taken: the model thread is busy with it
    second = threading.Thread(target=impatient)
    second.start()
    while worker.queue_depth < 40:  # the impatient caller's texts are queued behind the running round
        threading.Event().wait(0.002)
    give_up.set()
    second.join(timeout=60)
    first.join(timeout=60)
    try:
        assert isinstance(outcome["impatient"], RequestCancelled), outcome["impatient"]
        assert "40 of its 40 texts were not run" in str(outcome["impatient"])
        assert outcome["busy"].shape == (32, onnx_encoder.dimension)
        m = worker.metrics()
        assert m["cancelled_requests"] == 1 and m["cancelled_texts"] == 40
        assert m["texts"] == 32 and m["queue_depth"] == 0  # only the blocker ran; nothing left counted as waiting
        # The backlog (tokens queued or running) is back to zero: the dropped texts left it, the run ones too.
        assert m["backlog_tokens"] == 0 and m["tokens_run"] >= 32 * 200 and worker.estimated_wait() == 0
        # A caller that already gave up is refused before queueing; the next caller is served as usual.
        with cancel_when(give_up), pytest.raises(RequestCancelled, match="before its texts were queued"):
            worker.encode(["too late"])
        assert np.allclose(worker.encode(sentences[:3]), onnx_encoder.encode(sentences[:3]), atol=1e-5)
    finally:
        worker.close()
