"""Deleting many folders' objects through shared ``DeleteObjects`` batches.

A job folder usually holds a handful of files; one request per folder would spend most
of a run on round trips. Every folder being deleted hands its keys to one
``BatchDeleter``, which packs them into requests of up to 1000 keys (S3's limit) and
tells each folder when *its* keys are gone. That answer is what lets a folder keep its
order across shared batches: artifacts, then metadata, then ``expiredAt`` strictly
last, each step only after the previous one is confirmed.

When to send a batch that is not full: while folders are still being found, after
``linger`` seconds, so keys from many folders (and from the three steps of each) share
a request; once every folder has been found (``drain``), by group commit, as databases
do with their log: as soon as a folder waits and no request is in flight, else when
that request comes back, taking along everything that gathered meanwhile. Full batches
go at once, up to ``max_in_flight`` at a time; adding to a full batch waits for a free
slot, so a folder of a million objects streams through with a few batches in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

from artifacts_shared.s3 import DELETE_BATCH_LIMIT, S3Client

__all__ = ["BatchDeleter", "Doomed", "Failure", "FolderDeletion"]


@dataclass(frozen=True, slots=True)
class Doomed:
    """An object to delete, with its size so the run can report the bytes freed."""

    key: str
    size: int


@dataclass(frozen=True, slots=True)
class Failure:
    key: str
    size: int
    code: str
    message: str


Outcome = Mapping[str, Failure]
"""The keys of a batch that S3 did not delete."""


@dataclass(slots=True)
class _Batch:
    # Made inside the running loop (the deleter lives within one run).
    objects: list[Doomed] = field(default_factory=list)
    done: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    awaited: bool = False


class BatchDeleter:
    """Packs keys from any number of folders into ``DeleteObjects`` requests."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        *,
        batch_size: int = DELETE_BATCH_LIMIT,
        max_in_flight: int = 4,
        linger: float = 1.0,
    ) -> None:
        if not 1 <= batch_size <= DELETE_BATCH_LIMIT:
            raise ValueError(f"batch_size must be 1..{DELETE_BATCH_LIMIT}, got {batch_size}")
        self._s3 = s3
        self._bucket = bucket
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(max_in_flight)
        self._linger = linger
        self._timer: asyncio.TimerHandle | None = None
        self._draining = False
        self._current = _Batch()
        self._sending = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests = 0

    async def __aenter__(self) -> BatchDeleter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def add(self, doomed: Doomed) -> asyncio.Future[Outcome]:
        """Queue ``doomed``; the future resolves, with the batch's failures, once it is sent."""
        batch = self._current
        batch.objects.append(doomed)
        if len(batch.objects) >= self._batch_size:
            self._take_current()
            # Waiting here, in the caller, is the back-pressure that bounds memory.
            await self._slots.acquire()
            self._launch(batch, slot_held=True)
        elif self._timer is None and not self._draining:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._send_partial)
        return batch.done

    def awaiting(self, done: asyncio.Future[Outcome]) -> None:
        """Someone waits for ``done``; once draining, its batch goes as soon as it can."""
        if done is self._current.done:
            self._current.awaited = True
            self._send_awaited()

    def drain(self) -> None:
        """No new folders will come: stop lingering, send what folders wait for."""
        self._draining = True
        self._cancel_timer()
        self._send_awaited()

    async def aclose(self) -> None:
        """Send what is queued and wait for every request to finish."""
        self._draining = True
        self._send_partial()
        while self._tasks:
            await asyncio.gather(*self._tasks)

    def _take_current(self) -> _Batch:
        batch, self._current = self._current, _Batch()
        self._cancel_timer()
        return batch

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send_partial(self) -> None:
        self._timer = None
        if self._current.objects:
            self._launch(self._take_current(), slot_held=False)

    def _send_awaited(self) -> None:
        batch = self._current
        if self._draining and batch.awaited and batch.objects and self._sending == 0:
            self._launch(self._take_current(), slot_held=False)

    def _launch(self, batch: _Batch, *, slot_held: bool) -> None:
        self._sending += 1
        task = asyncio.ensure_future(self._send(batch, slot_held=slot_held))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: _Batch, *, slot_held: bool) -> None:
        if not slot_held:
            await self._slots.acquire()
        try:
            self.requests += 1
            response = await self._s3.delete_objects(
                Bucket=self._bucket,
                Delete={"Objects": [{"Key": d.key} for d in batch.objects], "Quiet": True},
            )
            sizes = {d.key: d.size for d in batch.objects}
            failures = {
                error.get("Key", "?"): Failure(
                    error.get("Key", "?"),
                    sizes.get(error.get("Key", "?"), 0),
                    error.get("Code", "?"),
                    error.get("Message", ""),
                )
                for error in response.get("Errors", [])
            }
        except Exception as err:  # whatever went wrong, these keys are not known to be gone
            failures = {
                d.key: Failure(d.key, d.size, type(err).__name__, str(err)) for d in batch.objects
            }
        finally:
            self._slots.release()
            self._sending -= 1
        batch.done.set_result(failures)
        self._send_awaited()


@dataclass(slots=True)
class FolderDeletion:
    """One folder's share of the deleter: what it handed over and what is known gone.

    ``deleter=None`` is a dry run: objects are counted, nothing is sent.
    """

    deleter: BatchDeleter | None
    prefix: str
    objects: int = 0
    bytes: int = 0
    failures: list[Failure] = field(default_factory=list)
    _pending: list[asyncio.Future[Outcome]] = field(default_factory=list)

    async def add(self, doomed: Doomed) -> None:
        self.objects += 1
        self.bytes += doomed.size
        if self.deleter is None:
            return
        done = await self.deleter.add(doomed)
        if not self._pending or self._pending[-1] is not done:
            self._pending.append(done)
            if len(self._pending) > 64:
                self._collect(only_done=True)

    async def settle(self) -> list[Failure]:
        """Wait until everything added so far is sent; the failures among this folder's keys."""
        if self._pending and self.deleter is not None:
            for done in self._pending:
                self.deleter.awaiting(done)
            await asyncio.wait(self._pending)
        self._collect(only_done=False)
        return self.failures

    def _collect(self, *, only_done: bool) -> None:
        waiting = []
        for done in self._pending:
            if only_done and not done.done():
                waiting.append(done)
                continue
            for failure in done.result().values():
                if failure.key.startswith(self.prefix):
                    self.failures.append(failure)
                    self.objects -= 1
                    self.bytes -= failure.size
        self._pending = waiting
