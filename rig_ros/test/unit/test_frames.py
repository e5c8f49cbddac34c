"""FrameStore: exploration frames kept in chunks, what a kill loses, resume, episodes."""

import numpy as np
import pytest

from rig_ros.core.frames import CORRUPT_SUFFIX, FRAMES_DIR, FrameStore, FrameStoreConfig

SHAPE = (6, 6, 3)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def frame(value: int) -> np.ndarray:
    return np.full(SHAPE, value % 256, np.uint8)


def action(value: float) -> np.ndarray:
    return np.array([value, -value], np.float32)


def chunk_files(run_dir):
    return sorted((run_dir / FRAMES_DIR).glob('*.npz'))


def test_full_chunks_survive_a_kill_and_the_tail_is_lost(tmp_path):
    store = FrameStore(tmp_path, FrameStoreConfig(chunk_frames=3, flush_period_s=0))
    for index in range(7):
        store.append('robot_0', 0, index, frame(index), action(index))
    assert store.count == 7 and store.stored == 6 and len(chunk_files(tmp_path)) == 2
    # "kill -9": no flush. A new store finds the two full chunks, in order.
    resumed = FrameStore(tmp_path, FrameStoreConfig(chunk_frames=3, flush_period_s=0))
    assert resumed.resume() == 6 and resumed.count == 6
    np.testing.assert_array_equal(resumed.images(), store.images()[:6])
    assert resumed.image_shape == SHAPE


def test_flush_and_the_time_bound_write_the_open_chunk(tmp_path):
    clock = Clock()
    store = FrameStore(tmp_path, FrameStoreConfig(chunk_frames=100, flush_period_s=5.0),
                       clock=clock)
    store.append('robot_0', 0, 0, frame(0), action(0))
    clock.now = 4.9
    assert not store.poll() and store.stored == 0
    clock.now = 5.0
    assert store.poll() and store.stored == 1
    store.append('robot_0', 0, 1, frame(1), action(1))
    clock.now = 11.0
    store.append('robot_0', 0, 2, frame(2), action(2))  # the oldest waited 6 s: written
    assert store.stored == 3
    store.append('robot_0', 0, 3, frame(3), None)
    assert store.flush() is not None and store.flush() is None
    assert store.stored == 4 and len(chunk_files(tmp_path)) == 3
    resumed = FrameStore(tmp_path)
    assert resumed.resume() == 4
    assert len(resumed.episodes()) == 1 and len(resumed.episodes()[0].actions) == 3


def test_a_corrupt_chunk_is_renamed_and_reported(tmp_path):
    store = FrameStore(tmp_path, FrameStoreConfig(chunk_frames=2, flush_period_s=0))
    for index in range(6):
        store.append('robot_0', 0, index, frame(index), action(index))
    files = chunk_files(tmp_path)
    files[1].write_bytes(b'not a zip')
    stale = files[0].parent / f'.{files[0].name}.abc.tmp'  # a write the kill interrupted
    stale.write_bytes(b'half')
    resumed = FrameStore(tmp_path, FrameStoreConfig(chunk_frames=2, flush_period_s=0))
    assert resumed.resume() == 4
    assert len(resumed.skipped_files) == 1 and files[1].name in resumed.skipped_files[0]
    assert files[1].with_suffix(CORRUPT_SUFFIX).exists() and not files[1].exists()
    assert not stale.exists()
    np.testing.assert_array_equal(resumed.images()[:, 0, 0, 0], [0, 1, 4, 5])
    # New chunks take new numbers: the corrupt one's is not reused.
    resumed.append('robot_0', 1, 0, frame(9), action(0))
    resumed.append('robot_0', 1, 1, frame(9), None)
    assert chunk_files(tmp_path)[-1].stem == '000000004'


def test_episodes_split_per_robot_at_gaps_and_new_episodes(tmp_path):
    store = FrameStore(tmp_path)
    # Two robots interleaved; robot_1 loses step 2 of its episode.
    for step in range(4):
        store.append('robot_0', 5, step, frame(step), action(step / 10) if step < 3 else None)
        if step != 2:
            store.append('robot_1', 8, step, frame(50 + step), action(step))
    store.append('robot_1', 9, 0, frame(60), action(0))  # robot_1's next episode
    store.append('robot_1', 9, 1, frame(61), None)
    store.append('robot_0', 6, 0, frame(70), action(0))  # a single frame so far: no step
    episodes = store.episodes()
    assert [(e.robot_id, e.episode_id, e.first_step, len(e.frames)) for e in episodes] == [
        ('robot_0', 5, 0, 4), ('robot_1', 8, 0, 2), ('robot_1', 9, 0, 2)]
    first = episodes[0]
    assert first.actions.shape == (3, 2) and first.frames.dtype == np.uint8
    np.testing.assert_array_equal(first.frames[:, 0, 0, 0], [0, 1, 2, 3])
    np.testing.assert_allclose(first.actions[:, 0], [0, 0.1, 0.2], rtol=1e-6)
    # robot_1's step 3 of episode 8 follows a lost step and precedes episode 9: alone, left out.
    np.testing.assert_array_equal(episodes[2].frames[:, 0, 0, 0], [60, 61])


def test_a_frame_without_its_action_ends_the_episode(tmp_path):
    store = FrameStore(tmp_path)
    store.append('robot_0', 0, 0, frame(0), action(0))
    store.append('robot_0', 0, 1, frame(1), None)  # the action never arrived
    store.append('robot_0', 0, 2, frame(2), action(2))
    store.append('robot_0', 0, 3, frame(3), None)
    assert [len(e.actions) for e in store.episodes()] == [1, 1]


def test_bad_frames_and_actions_are_refused(tmp_path):
    store = FrameStore(tmp_path)
    store.append('robot_0', 0, 0, frame(0), action(0))
    with pytest.raises(ValueError, match='store keeps'):
        store.append('robot_0', 0, 1, np.zeros((7, 6, 3), np.uint8), None)
    with pytest.raises(ValueError, match='uint8'):
        store.append('robot_0', 0, 1, np.zeros(SHAPE, np.float32), None)
    with pytest.raises(ValueError, match='finite'):
        store.append('robot_0', 0, 1, frame(1), np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match='finite'):
        store.append('robot_0', 0, 1, frame(1), np.zeros(3))
    assert store.count == 1
    with pytest.raises(RuntimeError, match='before the first append'):
        store.resume()


def test_an_empty_store(tmp_path):
    store = FrameStore(tmp_path)
    assert store.resume() == 0 and store.count == 0 and store.episodes() == []
    assert store.images().shape == (0, 0, 0, 3) and store.flush() is None


def test_hands_are_kept_with_their_frames_and_old_chunks_have_none(tmp_path):
    store = FrameStore(tmp_path, FrameStoreConfig(chunk_frames=2, flush_period_s=0))
    for index in range(3):
        hand = None if index == 1 else np.array([0.1 * index, 0.6, 0.2])
        store.append('robot_0', 0, index, frame(index), action(index) if index < 2 else None,
                     hand)
    store.flush()
    resumed = FrameStore(tmp_path, FrameStoreConfig(chunk_frames=2, flush_period_s=0))
    resumed.resume()
    (episode,) = resumed.episodes()
    assert episode.hands.dtype == np.float32 and episode.hands.shape == (3, 3)
    np.testing.assert_allclose(episode.hands[[0, 2]], [[0.0, 0.6, 0.2], [0.2, 0.6, 0.2]])
    assert np.isnan(episode.hands[1]).all()
    # A chunk written before hands were kept reads as hands unknown.
    first = chunk_files(tmp_path)[0]
    with np.load(first) as data:
        old = {key: data[key] for key in data.files if key != 'hands'}
    np.savez(first, **old)
    again = FrameStore(tmp_path, FrameStoreConfig(chunk_frames=2, flush_period_s=0))
    assert again.resume() == 3 and not again.skipped_files
    assert np.isnan(again.episodes()[0].hands[:2]).all()
