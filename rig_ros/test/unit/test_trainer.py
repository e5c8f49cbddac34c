"""RigTrainer: the schedule both hosts pay, the VAE stage seam, checkpoints of its networks."""

from typing import Mapping

import numpy as np
import pytest

from rig_ros.core.replay import GoalReplayBuffer, RelabelConfig
from rig_ros.core.td3 import TD3Config
from rig_ros.core.trainer import latent_prior, RigTrainer, VAEFineTuning
from rig_ros.core.vae import ConvVAE, VAEConfig

DIM = 3


class CountingStage:
    """A VAE stage that runs every `every` stored transitions and records each run."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.runs: list[int] = []

    def due(self, stored: int, last_run: int) -> bool:
        return stored // self.every > last_run // self.every

    def run(self, buffer: GoalReplayBuffer) -> Mapping[str, float]:
        self.runs.append(len(buffer))
        return {'loss': 1.0}


def make_trainer(**overrides) -> RigTrainer:
    values = {'obs_dim': DIM, 'goal_dim': DIM, 'action_dim': 2,
              'td3': TD3Config(hidden_sizes=(8,), batch_size=4, learning_starts=5,
                               updates_per_step=2),
              'relabel': RelabelConfig(), 'replay_capacity': 100,
              'prior_goal_sampler': latent_prior(np.random.default_rng(0), DIM), **overrides}
    return RigTrainer(**values)


def add_episode(trainer: RigTrainer, length: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    latents = rng.standard_normal((length + 1, DIM))
    goal = rng.standard_normal(DIM)
    for t in range(length):
        trainer.add_step(latents[t], rng.uniform(-1, 1, 2), latents[t + 1], goal,
                         episode_end=t == length - 1)


def test_training_pays_what_the_schedule_owes():
    trainer = make_trainer()
    add_episode(trainer, 4)
    assert not trainer.learning() and trainer.train() == 0
    add_episode(trainer, 3, seed=1)
    assert trainer.learning() and trainer.updates_due() == 2 * (7 - 5 + 1)
    assert trainer.train(max_updates=4) == 4
    assert trainer.train(stop=lambda: True) == 1  # stop() ends the call after an update
    assert trainer.train() == 1 and trainer.updates == 6 and trainer.train() == 0
    assert set(trainer.last_metrics) >= {'critic_loss', 'q_mean'}


def test_the_vae_stage_runs_when_due_and_resumes_its_count():
    stage = CountingStage(every=4)
    trainer = make_trainer(vae_stage=stage)
    assert trainer.run_vae_stage() is None
    for seed in range(3):
        add_episode(trainer, 3, seed)  # 3, 6, 9 transitions stored
        trainer.run_vae_stage()
    assert stage.runs == [6, 9]  # passed 4, then 8
    resumed = make_trainer(vae_stage=stage)
    resumed.restore_replay(trainer.buffer.export(), stored=trainer.stored)
    assert resumed.stored == 9 and resumed.run_vae_stage() is None  # counted from 9
    add_episode(resumed, 3, seed=5)
    assert resumed.run_vae_stage() == {'loss': 1.0} and stage.runs == [6, 9, 12]


def test_network_state_round_trip():
    trainer = make_trainer()
    add_episode(trainer, 8)
    trainer.train()
    modules, optimizers = trainer.network_state()
    assert set(optimizers) == {'actor_optimizer', 'critic_optimizer'} and 'actor' in modules
    copy = make_trainer(seed=3)
    copy.load_network_state(modules, optimizers, trainer.updates)
    obs = np.zeros(DIM)
    assert copy.updates == trainer.updates
    np.testing.assert_array_equal(copy.acting_policy().act(obs, obs, False),
                                  trainer.acting_policy().act(obs, obs, False))


def test_mahalanobis_needs_the_variance():
    # Without a variance the trainer waits for one (a run that pretrains its VAE): sampling
    # says so, set_latent_variance gives it.
    waiting = make_trainer(reward='mahalanobis', relabel=RelabelConfig(1.0, 0.0, 0.0))
    add_episode(waiting, 6)
    with pytest.raises(RuntimeError, match='set_latent_variance'):
        waiting.buffer.sample(16)
    with pytest.raises(ValueError, match='positive'):
        waiting.set_latent_variance(np.zeros(DIM))
    waiting.set_latent_variance(np.full(DIM, 4.0))
    given = make_trainer(reward='mahalanobis', latent_variance=np.full(DIM, 4.0),
                         relabel=RelabelConfig(1.0, 0.0, 0.0))
    add_episode(given, 6)
    for trainer in (waiting, given):
        batch = trainer.buffer.sample(16)
        distance = np.linalg.norm((batch['achieved_goal'] - batch['goal']).numpy(), axis=1)
        np.testing.assert_allclose(batch['reward'].numpy(), -distance / 2.0, rtol=1e-5)
    euclidean = make_trainer(relabel=RelabelConfig(1.0, 0.0, 0.0))
    euclidean.set_latent_variance(np.full(DIM, 4.0))  # no metric to give: unchanged
    add_episode(euclidean, 6)
    batch = euclidean.buffer.sample(16)
    distance = np.linalg.norm((batch['achieved_goal'] - batch['goal']).numpy(), axis=1)
    np.testing.assert_allclose(batch['reward'].numpy(), -distance, rtol=1e-5)


def test_fine_tuning_rounds_run_every_period_and_stop_after_until():
    vae = ConvVAE(VAEConfig(image_size=48))

    def rounds(until: int, stored_counts: range) -> list[int]:
        stage, last, ran = VAEFineTuning(vae, vae.config, every=100, steps=1, until=until), 0, []
        for stored in stored_counts:
            if stage.due(stored, last):
                ran.append(stored)
                last = stored
        return ran

    assert rounds(0, range(1, 501)) == [100, 200, 300, 400, 500]
    assert rounds(300, range(1, 501)) == [100, 200, 300]
    assert rounds(350, range(1, 501)) == [100, 200, 300]
    # A host that checks late (the graph's learner) still runs the last round within `until`.
    assert rounds(300, range(0, 501, 70)) == [140, 210, 350]
    assert rounds(300, range(0, 501, 370)) == [370]
    assert not VAEFineTuning(vae, vae.config, every=0, steps=1).due(10**6, 0)


def test_an_end_without_rounds_is_refused_by_every_config():
    from rig_ros.core.learner import LearnerConfig
    from rig_ros.core.pipeline import PipelineConfig
    from rig_ros.run.session import SessionConfig

    for make in (PipelineConfig, LearnerConfig, SessionConfig):
        with pytest.raises(ValueError, match='fine_tune_vae_until .* needs fine_tune_vae_every'):
            make(fine_tune_vae_until=5000)
        assert make(fine_tune_vae_every=1000, fine_tune_vae_until=5000).fine_tune_vae_until == 5000
