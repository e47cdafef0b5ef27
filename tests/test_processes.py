"""Worker pools (``kwstream.processes``, used by ``scan`` and ``train``): a parent killed outright, as ``timeout`` or a
job runner kills it, runs no ``finally`` to end its workers, so they must notice and go themselves."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PARENT = textwrap.dedent("""
    import os, time
    from kwstream.processes import worker_pool
    if __name__ == "__main__":
        pool = worker_pool(2)
        [f.result() for f in [pool.submit(time.sleep, 0.5) for _ in range(4)]]
        print("ready", flush=True)
        time.sleep(120)
""")


def running(pid: int) -> bool:
    """Alive and not a zombie (a container's first process may not reap orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.slow  # starts processes
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    children: list[int] = []
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as parent:
        try:
            assert select.select([parent.stdout], [], [], 120)[0], "the parent never had its workers ready"
            assert parent.stdout.readline().strip() == "ready"
            found = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout
            children = [int(p) for p in found.split()]
            assert len(children) >= 2  # the two workers (and the resource tracker)
            parent.send_signal(signal.SIGTERM)
            parent.wait(10)
            deadline = time.monotonic() + 15
            while any(map(running, children)) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not [p for p in children if running(p)]
        finally:  # whatever failed, nothing is left running
            parent.kill()
            for pid in filter(running, children):
                os.kill(pid, signal.SIGKILL)
