"""Worker processes for work that a process pool shares out (``scan``'s files, ``train``'s synthesis): spawned (a
forked copy of a process holding ONNX Runtime's threads can deadlock), deaf to Ctrl-C (the parent handles it and ends
them), and gone when their parent is (killed by ``timeout`` or a job runner, it runs no ``finally`` to end them)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PARENT_CHECK_S = 1.0
"""How often a worker looks whether its parent still runs."""


def cores() -> int:
    """The cores this process may run on (its affinity, where the system tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def physical_cores() -> int | None:
    """Of ``cores()``, the physical ones (a core's hyperthreads count once, where Linux tells which they are): the
    threads ONNX Runtime starts by default, but within this process's affinity (``taskset``), which its own default
    ignores (it pins a thread to every physical core of the machine). None where the system does not tell the
    affinity (macOS, Windows)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    shared = set()
    for cpu in os.sched_getaffinity(0):
        try:
            shared.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            shared.add(str(cpu))
    return len(shared)


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)


def _start(parent: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="parent-watch").start()
    if initializer is not None:
        initializer(*initargs)


def worker_pool(workers: int, initializer: Callable[..., None] | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes, each set up by ``initializer(*initargs)``."""
    return ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _start, (os.getpid(), initializer, initargs))


def terminate(executor: ProcessPoolExecutor) -> None:
    """End the workers now, work in hand or not (Python 3.14 has ``terminate_workers``; before, the executor's own map
    of processes is the only handle on them)."""
    end = getattr(executor, "terminate_workers", None)
    if end is not None:
        end()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.terminate()
    executor.shutdown(wait=False, cancel_futures=True)
