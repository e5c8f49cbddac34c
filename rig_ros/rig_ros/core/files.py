"""Files written whole or not at all: a synced temporary file renamed over the target.

A crash (power loss included) leaves either the old file or the new one, never a mix or a
truncated file: the data is fsynced before the rename, and the directory after it, so the
rename itself survives. Temporary files are hidden (`.<name>.<random>.tmp`) next to the target
and removed when writing fails.
"""

import contextlib
import os
import pathlib
import tempfile
from typing import BinaryIO, Callable, Union

PathLike = Union[str, os.PathLike]
FILE_MODE = 0o644  # mkstemp's 0600 would hide run files from other users


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> pathlib.Path:
    """Replace `path` with what `write(stream)` writes to a binary stream; return the path.

    Streaming suits large payloads (np.savez of a replay buffer) that should not be copied
    into memory first. The parent directory is created if needed.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        os.fchmod(descriptor, FILE_MODE)
        with open(descriptor, 'wb') as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _sync_directory(path.parent)
    return path


def atomic_write_bytes(path: PathLike, data: bytes) -> pathlib.Path:
    """Replace `path` with `data` atomically (see the module doc); return the path."""
    return atomic_write(path, lambda stream: stream.write(data))


def atomic_write_text(path: PathLike, text: str, encoding: str = 'utf-8') -> pathlib.Path:
    """Replace `path` with `text` atomically (see the module doc); return the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def _sync_directory(directory: pathlib.Path) -> None:
    """Persist a rename in `directory`; some filesystems refuse fsync on directories."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
