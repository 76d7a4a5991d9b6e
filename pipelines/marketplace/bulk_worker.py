"""The second core in the bulk backfill: a worker process prepares batches of export records
(parse, the resource's rules, dlt's row hash and Arrow shape: bulk.py) while this process
splits the files and hands dlt what is ready.

The worker is spawned (a fresh interpreter holding no file, lock or socket of the run) and
serves one pipe: it ends when this process closes its end, and when this process dies (a
kill -9 closes the pipe with it), so a killed run leaves no worker behind. Its errors are
raised here as they were raised there: the same error a run without it would meet.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa

Record = dict[str, Any]
# What dlt gets (an Arrow table, or records it must type itself), with the key and the
# cursor value of each of its records, in order.
Part = tuple[pa.Table | list[Record], list[Any], list[str | None]]
# A batch of records as JSON texts -> its parts (a picklable callable: it crosses the pipe).
Prepare = Callable[[list[bytes]], list[Part]]

# Batches waiting in the worker before this process prepares one itself: one being prepared
# and one queued keeps the worker busy; more would only hold memory.
QUEUED = 2


def serve(connection: Connection) -> None:
    """The worker: (prepare, texts) after (prepare, texts), answered in order, until the pipe
    closes."""
    gc.disable()  # as in bulk.batches: parsed JSON makes no cycles
    # Batches are read as they come, in a thread: the main process may be sending the next
    # while this one sends an answer, and two blocked sends on one pipe would wait forever.
    tasks: queue.SimpleQueue[tuple[Prepare, list[bytes]] | None] = queue.SimpleQueue()

    def receive() -> None:
        try:
            while True:
                tasks.put(connection.recv())
        except (EOFError, OSError):
            tasks.put(None)

    threading.Thread(target=receive, name="mpac-bulk-receive", daemon=True).start()
    while (task := tasks.get()) is not None:
        prepare, texts = task
        try:
            answer: tuple[bool, Any] = (True, prepare(texts))
        except Exception as error:
            answer = (False, error)
        try:
            connection.send(answer)
        except (pickle.PicklingError, TypeError, AttributeError):
            connection.send((False, RuntimeError(f"{type(answer[1]).__name__}: {answer[1]}")))
        except OSError:
            return


class Worker:
    """One worker process and the answers it sent that are not asked for yet."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, theirs = context.Pipe()
        self._process = context.Process(target=serve, args=(theirs,), name="mpac-bulk-worker")
        self._process.daemon = True
        self._process.start()
        theirs.close()
        self._sent = 0
        self._received = 0
        self._answers: dict[int, tuple[bool, Any]] = {}
        self._abandoned: set[int] = set()

    @property
    def queued(self) -> int:
        return self._sent - self._received

    def send(self, prepare: Prepare, texts: list[bytes]) -> int:
        self._connection.send((prepare, texts))
        self._sent += 1
        return self._sent

    def ready(self, ticket: int) -> bool:
        while ticket not in self._answers and self._connection.poll():
            self._receive()
        return ticket in self._answers

    def result(self, ticket: int) -> list[Part]:
        while ticket not in self._answers:
            self._receive()
        ok, value = self._answers.pop(ticket)
        if not ok:
            raise value
        parts: list[Part] = value
        return parts

    def abandon(self, tickets: Iterable[int]) -> None:
        """Answers nobody will ask for (a reader stopped early): dropped when they come."""
        for ticket in tickets:
            if self._answers.pop(ticket, None) is None:
                self._abandoned.add(ticket)

    def close(self) -> None:
        self._connection.close()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def _receive(self) -> None:
        try:
            answer = self._connection.recv()
        except EOFError:
            raise RuntimeError(
                f"the bulk backfill's worker process ended (exit code {self._process.exitcode})"
            ) from None
        self._received += 1
        if self._received in self._abandoned:
            self._abandoned.discard(self._received)
        else:
            self._answers[self._received] = answer


_shared: Worker | None = None
_users = 0


@contextmanager
def _borrowed() -> Iterator[Worker]:
    """The worker that the resources reading at the same time share (dlt reads them in turn
    in one thread), started by the first and ended by the last."""
    global _shared, _users
    if _shared is None:
        _shared = Worker()
    _users += 1
    try:
        yield _shared
    finally:
        _users -= 1
        if _users == 0:
            _shared.close()
            _shared = None


def prepared(batches: Iterable[list[bytes]], prepare: Prepare) -> Iterator[Part]:
    """The parts of every batch, in batch order: the worker prepares a batch unless QUEUED
    batches already wait for it, and then this process prepares it itself."""
    collecting = gc.isenabled()
    gc.disable()
    pending: deque[int | list[Part]] = deque()
    try:
        with _borrowed() as worker:
            try:
                for texts in batches:
                    if worker.queued < QUEUED:
                        pending.append(worker.send(prepare, texts))
                    else:
                        pending.append(prepare(texts))
                    while pending and (
                        len(pending) > QUEUED + 1
                        or not isinstance(pending[0], int)
                        or worker.ready(pending[0])
                    ):
                        yield from _parts(worker, pending.popleft())
                while pending:
                    yield from _parts(worker, pending.popleft())
            finally:
                worker.abandon(ticket for ticket in pending if isinstance(ticket, int))
    finally:
        if collecting:
            gc.enable()


def _parts(worker: Worker, entry: int | list[Part]) -> list[Part]:
    return worker.result(entry) if isinstance(entry, int) else entry
