"""Exploration frames kept on disk as they arrive: the VAE's training set and first replay.

While the fleet explores (no VAE yet, random end-effector velocities) every camera frame that
reaches the learner is appended here with its robot, episode, step and the action that
followed it (none for an episode's last frame), and where the hand was (NaN: unknown).
`images()` is the VAE's pretraining set;
`episodes()` cuts the frames into episodes (frames [T + 1], actions [T]) that become replay
transitions once a VAE has encoded them (`core.latent_versions.add_exploration`).

Durability: frames are written in chunks, `frames/<sequence>.npz`, each atomically
(`core.files`). A chunk holds the frames not yet written when it is written: `chunk_frames`
of them as soon as that many wait, fewer on `flush()` or once the oldest waiting frame is
`flush_period_s` old (checked by `append` and `poll`). A process killed with SIGKILL
therefore loses fewer than `chunk_frames` frames, and none older than `flush_period_s` as long
as `append` or `poll` runs at least that often (the host polls from a timer, and flushes
before leaving the explore stage). `resume()` reads the chunks in order; an unreadable chunk
is renamed `*.corrupt` and reported in `skipped_files`; temporary files of a write the kill
interrupted are removed.

Threads: every method may be called from any thread (one lock; a chunk is written holding it,
so an append may wait for a write).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import os
import pathlib
import threading
import time
from typing import Callable, Optional
import zipfile

import numpy as np

from rig_ros.core.checkpoints import CheckpointError
from rig_ros.core.files import atomic_write
from rig_ros.core.hands import hand_or_unknown, HAND_SIZE

FRAMES_DIR = 'frames'
CORRUPT_SUFFIX = '.corrupt'
_KEYS = ('images', 'actions', 'robot', 'episode', 'step', 'hands')
_Frame = tuple[np.ndarray, np.ndarray, str, int, int, np.ndarray]  # a kept frame, as _KEYS


@dataclass(frozen=True)
class FrameStoreConfig:
    """How exploration frames are kept (see the module doc for what a kill loses)."""

    chunk_frames: int = 500
    """Frames per chunk file: a chunk is written as soon as this many frames wait."""
    flush_period_s: float = 5.0
    """Seconds the oldest waiting frame may wait before the waiting frames are written as a
    (shorter) chunk; 0: only full chunks and flush()."""
    action_dim: int = 2
    """Size of the actions stored with the frames."""
    compress: bool = False
    """Compress chunk files (smaller, but each write costs the learner CPU time)."""

    def __post_init__(self) -> None:
        """Check the values; an error names the field."""
        if self.chunk_frames < 1 or self.action_dim < 1:
            raise ValueError(f'chunk_frames and action_dim must be >= 1, got '
                             f'{self.chunk_frames!r}, {self.action_dim!r}')
        if not 0 <= self.flush_period_s < float('inf'):
            raise ValueError(f'flush_period_s must be >= 0 and finite, '
                             f'got {self.flush_period_s!r}')


@dataclass(frozen=True)
class FrameEpisode:
    """Consecutive frames of one robot's episode and the actions between them."""

    robot_id: str
    episode_id: int
    first_step: int
    """Step index of frames[0]."""
    frames: np.ndarray
    """uint8 [T + 1, H, W, 3]."""
    actions: np.ndarray
    """float32 [T, action_dim]: actions[t] led from frames[t] to frames[t + 1]."""
    hands: Optional[np.ndarray] = None
    """float32 [T + 1, 3]: the hand at each frame, NaN where unknown (None: all unknown)."""


class FrameStore:
    """Exploration frames appended as they arrive and written in chunks (see the module doc)."""

    def __init__(self, run_dir: str | os.PathLike,
                 config: Optional[FrameStoreConfig] = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or FrameStoreConfig()
        self.directory = pathlib.Path(run_dir) / FRAMES_DIR
        self._clock = clock
        self._lock = threading.Lock()
        self._chunks: list[dict[str, np.ndarray]] = []  # written (or resumed), in order
        self._pending: list[_Frame] = []  # not yet written
        self._pending_since = 0.0  # clock() at the oldest pending frame
        self._stored = 0  # frames in written chunks
        self._steps = 0  # frames kept with their action (steps explored), written or waiting
        self._image_shape: Optional[tuple[int, ...]] = None
        # New chunks never reuse a number already on disk, resumed or not.
        self._sequence = max((number for number, _ in _numbered(self.directory, '*')),
                             default=0)
        self.skipped_files: list[str] = []

    @property
    def count(self) -> int:
        """Frames kept: written and waiting."""
        with self._lock:
            return self._stored + len(self._pending)

    @property
    def steps(self) -> int:
        """Frames kept with the action that followed them: the environment steps explored."""
        with self._lock:
            return self._steps

    @property
    def stored(self) -> int:
        """Frames in written chunks (what survives a kill)."""
        with self._lock:
            return self._stored

    @property
    def image_shape(self) -> Optional[tuple[int, ...]]:
        """Shape of every frame (set by the first frame kept); None before."""
        return self._image_shape

    def append(self, robot_id: str, episode_id: int, step_index: int, frame: np.ndarray,
               action: Optional[np.ndarray], hand: Optional[np.ndarray] = None) -> None:
        """Keep one frame and the action that followed it (None: none, e.g. the last frame).

        hand: where the hand was at the frame (x, y, z); None (or another size): unknown.

        Writes a chunk when one is due. Raises ValueError for a frame that is not uint8
        HxWx3 of the store's shape or an action that is not `action_dim` finite numbers.
        """
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f'expected a uint8 HxWx3 frame, got {frame.dtype} {frame.shape}')
        size = self.config.action_dim
        if action is None:
            action = np.full(size, np.nan, np.float32)
        else:
            action = np.asarray(action, np.float32)
            if action.shape != (size,) or not np.isfinite(action).all():
                raise ValueError(f'action must be {size} finite numbers, got {action!r}')
        with self._lock:
            if self._image_shape is None:
                self._image_shape = frame.shape
            elif frame.shape != self._image_shape:
                raise ValueError(f'frame of shape {frame.shape}, the store keeps '
                                 f'{self._image_shape}')
            if not self._pending:
                self._pending_since = self._clock()
            self._steps += bool(np.isfinite(action).all())
            self._pending.append((frame.copy(), action, str(robot_id), int(episode_id),
                                  int(step_index), hand_or_unknown(hand)))
            if len(self._pending) >= self.config.chunk_frames or self._period_passed():
                self._write_pending()

    def poll(self) -> bool:
        """Write the waiting frames if the oldest is flush_period_s old; return if it wrote."""
        with self._lock:
            if not self._pending or not self._period_passed():
                return False
            self._write_pending()
            return True

    def flush(self) -> Optional[pathlib.Path]:
        """Write every waiting frame now; return the chunk written (None: nothing waited)."""
        with self._lock:
            return self._write_pending() if self._pending else None

    def _period_passed(self) -> bool:
        period = self.config.flush_period_s
        return period > 0 and self._clock() - self._pending_since >= period

    def _write_pending(self) -> pathlib.Path:
        pending, self._pending = self._pending, []
        chunk = _as_chunk(pending)
        save = np.savez_compressed if self.config.compress else np.savez
        path = self.directory / f'{self._sequence + 1:09d}.npz'
        try:
            atomic_write(path, lambda stream: save(stream, **chunk))
        except BaseException:
            self._pending = pending + self._pending  # kept for the next try
            raise
        self._sequence += 1
        self._chunks.append(chunk)
        self._stored += len(pending)
        return path

    def resume(self) -> int:
        """Read the chunks on disk in order (see the module doc); return the frames read.

        Call it once, before the first append.
        """
        with self._lock:
            if self._chunks or self._pending:
                raise RuntimeError('resume() must come before the first append')
            for stale in self.directory.glob('.*.tmp'):  # a write the kill interrupted
                with contextlib.suppress(OSError):
                    stale.unlink()
            for _, file in _numbered(self.directory, '*.npz'):
                try:
                    chunk = self._read_chunk(file)
                except CheckpointError as error:
                    self.skipped_files.append(f'{file}: {error}')
                    with contextlib.suppress(OSError):
                        file.rename(file.with_suffix(CORRUPT_SUFFIX))
                    continue
                self._image_shape = chunk['images'].shape[1:]
                self._chunks.append(chunk)
                self._stored += len(chunk['images'])
                self._steps += int(np.isfinite(chunk['actions']).all(axis=1).sum())
            return self._stored

    def _read_chunk(self, file: pathlib.Path) -> dict[str, np.ndarray]:
        try:
            with np.load(file, allow_pickle=False) as data:
                chunk = {key: data[key] for key in _KEYS if key != 'hands'}
                # Chunks written before hands were kept: unknown.
                chunk['hands'] = (data['hands'] if 'hands' in data.files else np.full(
                    (len(chunk['images']), HAND_SIZE), np.nan, np.float32))
        except KeyError as error:
            raise CheckpointError(f'no {error} array') from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise CheckpointError(f'unreadable: {error}') from None
        images, count = chunk['images'], len(chunk['images'])
        if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3
                or (self._image_shape is not None and images.shape[1:] != self._image_shape)):
            raise CheckpointError(f'images of {images.dtype} {images.shape}, expected uint8 '
                                  f'[N, *{self._image_shape or "(H, W, 3)"}]')
        if (chunk['actions'].shape != (count, self.config.action_dim)
                or any(chunk[key].shape != (count,) for key in ('robot', 'episode', 'step'))
                or chunk['hands'].shape != (count, HAND_SIZE)):
            raise CheckpointError(f'arrays of shapes {[chunk[key].shape for key in _KEYS]} do '
                                  f'not fit {count} frames and action_dim '
                                  f'{self.config.action_dim}')
        chunk['actions'] = chunk['actions'].astype(np.float32, copy=False)
        return chunk

    def _columns(self) -> dict[str, np.ndarray]:
        """Every frame kept, in arrival order, as one array per key (holding the lock)."""
        chunks = list(self._chunks)
        if self._pending:
            chunks.append(_as_chunk(self._pending))
        if not chunks:
            shape = self._image_shape or (0, 0, 3)
            return {'images': np.zeros((0, *shape), np.uint8),
                    'actions': np.zeros((0, self.config.action_dim), np.float32),
                    'robot': np.zeros(0, str), 'episode': np.zeros(0, np.int64),
                    'step': np.zeros(0, np.int64),
                    'hands': np.zeros((0, HAND_SIZE), np.float32)}
        return {key: np.concatenate([chunk[key] for chunk in chunks]) for key in _KEYS}

    def images(self) -> np.ndarray:
        """Return every frame kept, uint8 [N, H, W, 3] in arrival order (a new array)."""
        with self._lock:
            return self._columns()['images']

    def episodes(self) -> list[FrameEpisode]:
        """Return the kept frames cut into episodes of at least one step each.

        Per robot in arrival order, a frame continues the episode of the robot's previous
        frame when it has the same episode id, the next step index, and that previous frame
        has its action; anything else (a new episode, a lost or repeated frame, a missing
        action) starts a new one. Single frames (no step) are left out.
        """
        with self._lock:
            columns = self._columns()
        robots, episodes, steps = columns['robot'], columns['episode'], columns['step']
        has_action = np.isfinite(columns['actions']).all(axis=1)
        result = []
        for robot in dict.fromkeys(robots.tolist()):  # robots in order of first arrival
            index = np.flatnonzero(robots == robot)
            previous, following = index[:-1], index[1:]
            continues = ((episodes[following] == episodes[previous])
                         & (steps[following] == steps[previous] + 1) & has_action[previous])
            starts = np.concatenate([[0], np.flatnonzero(~continues) + 1, [len(index)]])
            for begin, end in zip(starts[:-1], starts[1:]):
                if end - begin < 2:
                    continue
                part = index[begin:end]
                result.append(FrameEpisode(
                    robot_id=str(robot), episode_id=int(episodes[part[0]]),
                    first_step=int(steps[part[0]]), frames=columns['images'][part],
                    actions=columns['actions'][part[:-1]], hands=columns['hands'][part]))
        return result


def _as_chunk(frames: list[_Frame]) -> dict[str, np.ndarray]:
    """Return kept frames as a chunk's arrays."""
    images, actions, robots, episodes, steps, hands = zip(*frames)
    return {'images': np.stack(images), 'actions': np.stack(actions),
            'robot': np.array(robots), 'episode': np.array(episodes, np.int64),
            'step': np.array(steps, np.int64), 'hands': np.stack(hands)}


def _numbered(directory: pathlib.Path, pattern: str) -> list[tuple[int, pathlib.Path]]:
    """Return the (sequence number, path) of a directory's numbered files, in order."""
    if not directory.is_dir():
        return []
    return sorted((int(file.stem), file) for file in directory.glob(pattern)
                  if file.stem.isdigit())
