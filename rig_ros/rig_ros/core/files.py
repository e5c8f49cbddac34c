"""Files written whole or not at all, and run directories written by one process at a time.

A crash (power loss included) leaves either the old file or the new one, never a mix or a
truncated file: the data is fsynced before the rename, and the directory after it, so the
rename itself survives. Temporary files are hidden (`.<name>.<random>.tmp`) next to the target
and removed when writing fails.

Two processes resuming one run directory would each save their own checkpoints and replay over
the other's: `hold_run_directory` refuses the second.
"""

import contextlib
import fcntl
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


LOCK_FILE = '.rig_lock'
_held: dict[pathlib.Path, tuple[int, int]] = {}  # directory: (holding pid, lock descriptor)


class RunDirectoryInUse(ValueError):
    """Another live process holds the run directory."""


def hold_run_directory(run_dir: PathLike) -> pathlib.Path:
    """Hold `run_dir` for writing until this process exits; return its absolute path.

    The hold is an advisory lock on `run_dir/.rig_lock` (fcntl.lockf), which the kernel drops
    when the holder dies: a crashed run's directory is free at once for the run that resumes
    it. The same process may hold a directory again (a pipeline built twice). Raises
    RunDirectoryInUse, naming the holder's pid, while another process holds it.
    """
    directory = pathlib.Path(run_dir).absolute()
    held = _held.get(directory)
    if held is not None and held[0] == os.getpid():  # a forked child inherits no lock
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(descriptor, 32, 0).decode(errors='replace').strip() or 'unknown'
        os.close(descriptor)
        raise RunDirectoryInUse(
            f'{directory} is in use by another process (pid {holder}); stop it first, or '
            'use another run directory') from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f'{os.getpid()}\n'.encode(), 0)
    _held[directory] = (os.getpid(), descriptor)
    return directory
