"""Isolated ROS_DOMAIN_IDs for tests and benchmarks that start graphs on one machine.

A domain id is reserved by an exclusive lock on a file in the temp directory; the lock dies
with its file handle (or the process), so a killed run frees its id.
"""

import fcntl
import itertools
import os
import pathlib
import tempfile
from typing import IO

DOMAIN_IDS = range(1, 101)
LOCK_DIR = pathlib.Path(tempfile.gettempdir()) / 'rig_ros_test_domains'
_counter = itertools.count()


def reserve_domain_id(ids: range = DOMAIN_IDS) -> tuple[int, IO[str]]:
    """Lock a free domain id; return it and the lock's file handle (keep it open)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    start = (os.getpid() * 31 + next(_counter)) % len(ids)
    for offset in range(len(ids)):
        domain = ids[(start + offset) % len(ids)]
        handle = open(LOCK_DIR / f'{domain}.lock', 'w')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return domain, handle
    raise RuntimeError(f'all ROS domain ids {ids.start}..{ids.stop - 1} are busy')
