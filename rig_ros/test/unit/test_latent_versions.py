"""Exploration into replay and the VAE version guard: the replay holds one version's latents."""

from factories import untrained_vae
import numpy as np
import pytest

from rig_ros.core.encoder import LatentEncoder
from rig_ros.core.frames import FrameStore
from rig_ros.core.latent_versions import (
    add_exploration, LatentVersions, VersionedFineTuning)
from rig_ros.core.replay import RelabelConfig
from rig_ros.core.td3 import TD3Config
from rig_ros.core.trainer import latent_prior, RigTrainer, VAEFineTuning
from rig_ros.core.vae import encode_images, VAEConfig
from rig_ros.core.vae_training import vae_input

LENGTHS = (3, 4)  # steps of the two exploration episodes


def make_trainer(image_shape=(48, 48, 3), vae_stage=None) -> RigTrainer:
    return RigTrainer(
        obs_dim=4, goal_dim=4, action_dim=2,
        td3=TD3Config(hidden_sizes=(8,), batch_size=4, learning_starts=1000),
        relabel=RelabelConfig(), replay_capacity=100,
        prior_goal_sampler=latent_prior(np.random.default_rng(0), 4), image_shape=image_shape,
        vae_stage=vae_stage)


def explored(tmp_path) -> FrameStore:
    """Two robots' exploration episodes of 84x84 frames, as the camera pipeline sends them."""
    rng = np.random.default_rng(0)
    store = FrameStore(tmp_path)
    for robot, steps in enumerate(LENGTHS):
        for step in range(steps + 1):
            store.append(f'robot_{robot}', 0, step,
                         rng.integers(0, 256, (84, 84, 3), dtype=np.uint8),
                         rng.uniform(-1, 1, 2) if step < steps else None)
    return store


def test_exploration_becomes_transitions_of_the_vae_version(tmp_path):
    store, vae, versions = explored(tmp_path), untrained_vae(), LatentVersions()
    trainer = make_trainer()
    added = add_exploration(trainer, store.episodes(), vae, 1, versions)
    assert added == sum(LENGTHS) == len(trainer.buffer) == trainer.stored
    assert versions.current == 1 and trainer.buffer.num_episodes == 2
    state = trainer.buffer.export()
    frames = vae_input(store.images(), 48)  # frames in the same order: episode by episode
    np.testing.assert_array_equal(trainer.buffer.images(), frames)
    np.testing.assert_allclose(state['obs'][:len(frames)], encode_images(vae, frames)[0],
                               rtol=1e-5, atol=1e-5)
    first = store.episodes()[0]
    np.testing.assert_allclose(state['action'][:LENGTHS[0]], first.actions)
    goals = state['goal'][:LENGTHS[0]]  # one imagined goal per episode
    assert np.all(goals == goals[0]) and not np.allclose(goals[0], state['goal'][LENGTHS[0] + 1])
    batch = trainer.buffer.sample(8)
    assert batch['obs'].shape == (8, 4)


def test_exploration_of_another_version_is_refused_into_a_filled_replay(tmp_path):
    store, versions = explored(tmp_path), LatentVersions()
    trainer = make_trainer(image_shape=None)  # a replay without images works too
    add_exploration(trainer, store.episodes(), untrained_vae(), 1, versions)
    with pytest.raises(ValueError, match='would mix'):
        add_exploration(trainer, store.episodes(), untrained_vae(seed=1), 2, versions)
    with pytest.raises(ValueError, match='keeps images'):
        add_exploration(make_trainer(image_shape=(84, 84, 3)), store.episodes(),
                        untrained_vae(), 1, LatentVersions())


def test_the_guard_refuses_latents_of_another_version():
    versions = LatentVersions(2)
    assert versions.check(2) == 'ok' and versions.check(2, 2) == 'ok'
    assert versions.check(1) == 'stale' and versions.check(3) == 'ahead'
    assert versions.check(1, 2) == 'mixed' and versions.check(2, 3) == 'mixed'
    # A robot's steps kept aside: only the runs of version 2 are stored, each as its own part.
    steps = [(1, 1), (1, 2), (2, 2), (2, 2), (2, 3), (3, 3), (2, 2)]
    assert versions.current_runs(steps) == [(2, 4), (6, 7)]
    assert versions.current_runs([]) == []
    assert versions.advance() == 3 and versions.check(2) == 'stale'


def test_fine_tuning_re_encodes_the_replay_then_advances_the_version(tmp_path):
    vae = untrained_vae()
    config = VAEConfig(image_size=48, latent_dim=4, batch_size=4)
    versions = LatentVersions()
    vae_file = tmp_path / 'vae.safetensors'
    stage = VersionedFineTuning(VAEFineTuning(vae, config, every=5, steps=2), versions,
                                vae_file, {'steps': 7})
    trainer = make_trainer(vae_stage=stage)
    add_exploration(trainer, explored(tmp_path).episodes(), vae, 1, versions)
    before = trainer.buffer.export()['obs'][:9].copy()
    metrics = trainer.run_vae_stage()  # 7 stored: a round was due at 5
    assert metrics is not None and metrics['vae_version'] == 2 and versions.current == 2
    after = trainer.buffer.export()['obs'][:9]
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, encode_images(vae, trainer.buffer.images().copy())[0],
                               rtol=1e-5, atol=1e-5)
    encoder = LatentEncoder()
    encoder.load_checkpoint(vae_file)
    assert encoder.version == 2
    assert trainer.run_vae_stage() is None  # not due again before 10 stored
