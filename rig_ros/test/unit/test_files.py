"""Atomic writes: old or new content, never half, no temporary files left; held run dirs."""

import os
import select
import subprocess
import sys

import pytest

from rig_ros.core.files import (
    atomic_write, atomic_write_bytes, atomic_write_text, hold_run_directory, RunDirectoryInUse)

HOLDER = """
import sys
from rig_ros.core.files import hold_run_directory
hold_run_directory(sys.argv[1])
print('held', flush=True)
sys.stdin.read()  # until the test closes stdin
"""


def test_writes_replace_whole_files(tmp_path):
    path = tmp_path / 'deeper' / 'state.json'
    assert atomic_write_text(path, '{"a": 1}') == path
    assert path.read_text() == '{"a": 1}' and os.stat(path).st_mode & 0o777 == 0o644
    atomic_write_bytes(path, b'new')
    assert path.read_bytes() == b'new'


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / 'replay.npz'
    atomic_write_bytes(path, b'old')

    def fail(stream):
        stream.write(b'half')
        raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'):
        atomic_write(path, fail)
    assert path.read_bytes() == b'old' and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_run_directory_is_held_by_one_process_until_it_exits(tmp_path):
    run_dir = tmp_path / 'run'
    holder = subprocess.Popen([sys.executable, '-c', HOLDER, str(run_dir)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([holder.stdout], [], [], 30)  # bounded wait
        assert ready and holder.stdout.readline().strip() == 'held'
        with pytest.raises(RunDirectoryInUse, match=f'pid {holder.pid}'):
            hold_run_directory(run_dir)
        with pytest.raises(ValueError, match='another process'):  # what hosts catch
            hold_run_directory(run_dir)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert hold_run_directory(run_dir) == run_dir.absolute()  # free once the holder is gone
    assert hold_run_directory(run_dir) == run_dir.absolute()  # and again for its holder
    assert (run_dir / '.rig_lock').read_text().strip() == str(os.getpid())
