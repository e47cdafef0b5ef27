"""Handing files to workers as they finish, and their results back as they come: in this process,
in worker processes (one model each), or in a pool of Ray actors (one model each)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

from kwstream.errors import KwstreamError
from kwstream.processes import cores, terminate, worker_pool
from kwstream.scan.worker import FileResult, Scanner, ScanJob

_scanner: Scanner | None = None
"""The worker process's own scanner (set by ``_start_worker``)."""


def _quiet_scanner(job: ScanJob) -> Scanner:
    """A worker's scanner: the driver has already said what loading the model has to say (which model
    ``auto`` chose, homophones); a worker logs only errors."""
    logging.getLogger("kwstream").setLevel(logging.ERROR)
    return Scanner(job)


def _start_worker(job: ScanJob) -> None:
    global _scanner
    _scanner = _quiet_scanner(job)


class _RayScanner:
    """A Ray actor holding a worker's scanner."""

    def __init__(self, job: ScanJob) -> None:
        self._scanner = _quiet_scanner(job)

    def scan(self, path: str) -> FileResult:
        return self._scanner.scan(path)


def _scan_in_worker(path: str) -> FileResult:
    assert _scanner is not None
    return _scanner.scan(path)


def scan_local(files: Sequence[Path], job: ScanJob, workers: int, scanner: Scanner | None = None) -> Iterator[FileResult]:
    """Results of ``files`` in the order they finish. One worker runs here (``scanner`` if given);
    more are processes (spawned, one model each), handed a file whenever one finishes. When a worker
    dies (killed, out of memory) the files it and its pool had in hand are retried once in a new pool.
    The workers end when the caller stops reading (Ctrl-C included)."""
    if workers == 1:
        scanner = scanner or Scanner(job)
        for path in files:
            yield scanner.scan(path)
        return
    job = job.with_threads(max(1, cores() // workers))
    todo = [(str(p), 0) for p in reversed(files)]
    while todo:
        executor = worker_pool(workers, _start_worker, (job,))
        try:
            yield from _drain(executor, todo, workers)
        except BaseException:  # Ctrl-C, or the caller stopped reading
            terminate(executor)
            raise
        executor.shutdown()


def _drain(executor: ProcessPoolExecutor, todo: list[tuple[str, int]], workers: int) -> Iterator[FileResult]:
    """Results from ``executor`` until ``todo`` (path, tries) is done or the pool breaks (a worker
    died); then the files it had in hand are back on ``todo`` (once each) and it returns."""
    running: dict[Future, tuple[str, int]] = {}
    broken = False
    while (todo and not broken) or running:
        while todo and not broken and len(running) < 2 * workers:  # a file in hand and one waiting, per worker
            path, tries = todo.pop()
            running[executor.submit(_scan_in_worker, path)] = (path, tries)
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            path, tries = running.pop(future)
            try:
                result = future.result()
            except BrokenProcessPool:
                broken = True
                if tries == 0:
                    todo.append((path, 1))
                    continue
                result = FileResult(path, 0.0, error="the worker process died twice on this file")
            yield result


RAY_ANSWER_TIMEOUT_S = 3.0
"""How long a Ray address given as HOST:PORT has to accept a TCP connection: ``ray.init`` retries one that
nobody answers for minutes."""


def _check_ray_address(address: str, given_as: str = "--ray") -> None:
    """Raise the user's error, in seconds, where ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``) is malformed or
    nothing there accepts a connection; other addresses (``auto``, ``local``, another scheme) are Ray's to resolve.
    ``given_as``: where the user gave it, for the message (``--ray``, or ``RAY_ADDRESS``)."""
    if address in ("auto", "local") or ("://" in address and not address.startswith("ray://")):
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")  # an IPv6 address, in brackets as Ray wants it
    host = host[1:-1] if bracketed else host
    if not host or any(c in host for c in ("[]" if bracketed else ":[]")) or not port.isdigit() or not 0 < int(port) < 65536:
        raise KwstreamError(f"{given_as} {address!r}: a Ray address is HOST:PORT (the head's, e.g. head:6379), "
                            "ray://HOST:PORT (Ray Client) or auto")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_ANSWER_TIMEOUT_S).close()
    except OSError as exc:  # refused, timed out, or no such host
        reason = exc.strerror or f"no answer in {RAY_ANSWER_TIMEOUT_S:g} s"
        source = "" if given_as == "--ray" else f" ({given_as})"
        raise KwstreamError(f"no Ray cluster at {address!r}{source}: nothing answers at {where} ({reason}); check the "
                            "address and that `ray start --head` runs there, or scan without Ray (leave --ray out)") from None


def _address_to_check(address: str | None) -> tuple[str, str] | None:
    """The address ``ray.init(address)`` will connect to and where the user gave it: ``address``, or where it leaves
    the choice to Ray (none, or ``auto``), the ``RAY_ADDRESS`` environment variable Ray reads then, if set."""
    if address is None or address == "auto":
        from_environment = os.environ.get("RAY_ADDRESS", "")
        return (from_environment, "RAY_ADDRESS") if from_environment else None
    return address, "--ray"


@contextmanager
def ray_connection(address: str | None) -> Iterator[None]:
    """This process connected to the Ray cluster at ``address`` (None: ``ray.init()``'s own choice)
    unless Ray is already initialised, and disconnected at the end if it connected here. No cluster
    at ``address`` is the user's error (told in seconds for HOST:PORT, ``_check_ray_address``), so that a
    caller can connect before writing anything."""
    import ray

    started = not ray.is_initialized()
    if started:
        if (to_check := _address_to_check(address)) is not None:
            _check_ray_address(*to_check)
        try:
            ray.init(address=address, include_dashboard=False, logging_level="WARNING")
        except ConnectionError as exc:
            raise KwstreamError(f"no Ray cluster at {address!r}: start one with `ray start --head` "
                                "or scan without Ray (leave --ray out)") from exc
        except ValueError as exc:  # an address Ray's own parser refuses
            raise KwstreamError(f"--ray {address!r}: {exc}") from None
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def scan_ray(files: Sequence[Path], job: ScanJob, workers: int | None, address: str | None) -> Iterator[FileResult]:
    """Results of ``files`` from a pool of Ray actors, each holding the model, in the order they
    finish. Connects to ``address`` (``ray_connection``) unless Ray is already initialised; ``workers``
    actors of one CPU each (None: one per CPU of the cluster). A file whose actor dies is retried once
    on another."""
    import ray

    with ray_connection(address):
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor_class = ray.remote(num_cpus=1)(_RayScanner)
        actors = [actor_class.remote(job.with_threads(1)) for _ in range(count)]
        todo = [(str(p), 0) for p in reversed(files)]
        running: dict = {}
        while todo or running:
            if not actors and not running:  # every actor died
                yield from (FileResult(path, 0.0, error="no Ray worker left") for path, _ in reversed(todo))
                return
            while todo and actors:
                path, tries = todo.pop()
                actor = actors.pop()
                running[actor.scan.remote(path)] = (actor, path, tries)
            [ref], _ = ray.wait(list(running), num_returns=1)
            actor, path, tries = running.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as exc:  # the actor (or its node) died: the file goes elsewhere once
                if tries == 0 and (actors or len(running)):
                    todo.append((path, 1))
                else:
                    yield FileResult(path, 0.0, error=f"worker died twice on this file: {exc}")
                continue
            actors.append(actor)
            yield result
