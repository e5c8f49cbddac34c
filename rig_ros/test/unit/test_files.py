"""Atomic writes: old or new content, never half, no temporary files left."""

import os

import pytest

from rig_ros.core.files import atomic_write, atomic_write_bytes, atomic_write_text


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
