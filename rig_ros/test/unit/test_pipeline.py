"""The in-process pipeline: stages run, results land in the run directory, runs resume."""

import json

import numpy as np
import pytest

from rig_ros.core import checkpoints
from rig_ros.core.encoder import LATENT_VARIANCE_KEY
from rig_ros.core.evaluation import read_evaluations
from rig_ros.core.noise import ExplorationConfig
from rig_ros.core.pipeline import PipelineConfig, RigPipeline
from rig_ros.core.td3 import TD3Config
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig


def tiny_config(**overrides) -> PipelineConfig:
    values = {'collect_images': 120, 'collect_episode_length': 30, 'vae_steps': 20,
              'rl_steps': 120, 'episode_length': 20, 'eval_every': 60, 'checkpoint_every': 60,
              'eval_goals': 2, 'replay_capacity': 500,
              'td3': TD3Config(learning_starts=40, updates_per_step=1, batch_size=32,
                               hidden_sizes=(32, 32))}
    values.update(overrides)
    return PipelineConfig(**values)


class InterruptAfter:
    """A sim whose step raises KeyboardInterrupt after `steps` calls (a crash mid-practice)."""

    def __init__(self, sim: SawyerSim, steps: int) -> None:
        self.sim, self.remaining = sim, steps

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def step(self, action: np.ndarray) -> None:
        self.remaining -= 1
        if self.remaining < 0:
            raise KeyboardInterrupt
        self.sim.step(action)


@pytest.fixture
def sim():
    with SawyerSim(SawyerSimConfig(task='reacher')) as simulator:
        yield simulator


def test_pipeline_writes_every_stage_and_a_learning_curve(sim, tmp_path):
    result = RigPipeline(sim, tiny_config(), tmp_path, progress=False).run()
    for name in ('config.json', 'images.npz', 'vae.safetensors', 'rl.safetensors',
                 'replay.npz', 'metrics.jsonl', 'result.json'):
        assert (tmp_path / name).is_file(), name
    assert [point['rl_step'] for point in result['curve']] == [0, 60, 120]
    assert len(result['rig_hand_distances']) == 2
    assert 0.0 <= result['rig_success_rate'] <= 1.0
    assert set(result['stage_wall_s']) == {'collect', 'pretrain', 'practice'}
    with np.load(tmp_path / 'images.npz') as data:
        assert data['images'].shape == (120, 48, 48, 3)
    with np.load(tmp_path / 'eval_frames.npz') as data:  # for `rig report`'s goal grid
        assert data['goals'].shape == data['finals'].shape and len(data['goals']) == 2
        assert int(data['rl_step']) == 120
    # metrics.jsonl's evaluation lines are the curve's points, as EvaluationRecords.
    records = read_evaluations(tmp_path / 'metrics.jsonl')
    assert [record.to_row() for record in records] == result['curve']
    assert records[-1].env_steps_total == 120 + 120 and records[-1].success_threshold_m == 0.05
    # The trainer paid the schedule's updates: one per step from learning_starts (40) on.
    saved = checkpoints.load_checkpoint(tmp_path / 'rl.safetensors')
    assert saved.metadata['updates'] == tiny_config().td3.schedule.updates_due(120) == 81
    # The VAE checkpoint carries the Mahalanobis metric for graph sessions' learners.
    variance = checkpoints.load_checkpoint(tmp_path / 'vae.safetensors').metadata[
        LATENT_VARIANCE_KEY]
    assert len(variance) == 4 and min(variance) > 0


def test_interrupted_practice_resumes_from_its_checkpoint(sim, tmp_path):
    config = tiny_config()
    # Collection (120 steps), evaluations at 0 and 60 (2 goals x 20 steps each) and 90
    # practice steps, then the crash: the checkpoint of step 60 stays.
    with pytest.raises(KeyboardInterrupt):
        RigPipeline(InterruptAfter(sim, 120 + 2 * 40 + 90), config, tmp_path,
                    progress=False).run()
    assert (tmp_path / 'rl.safetensors').is_file()
    assert not (tmp_path / 'result.json').exists()
    images_mtime = (tmp_path / 'images.npz').stat().st_mtime_ns

    logs = []
    result = RigPipeline(sim, config, tmp_path, progress=False, log=logs.append).run()
    assert 'resuming practice at step 60' in logs
    assert (tmp_path / 'images.npz').stat().st_mtime_ns == images_mtime  # not collected again
    assert [point['rl_step'] for point in result['curve']] == [0, 60, 120]
    # Wall time per stage adds up over both sessions (collection ran in the first only).
    assert set(result['stage_wall_s']) == {'collect', 'pretrain', 'practice'}
    assert result['wall_s'] == pytest.approx(sum(result['stage_wall_s'].values()))
    assert result['session_wall_s'] < result['wall_s']


def test_a_run_directory_refuses_a_different_configuration(sim, tmp_path):
    RigPipeline(sim, tiny_config(rl_steps=60), tmp_path, progress=False)
    with pytest.raises(ValueError, match='different configuration'):
        RigPipeline(sim, tiny_config(rl_steps=90), tmp_path, progress=False)


def test_config_round_trips_through_json():
    config = tiny_config(crop=(1, 2, 30, 40))
    again = PipelineConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_runs_saved_before_the_td3_split_still_resume(sim, tmp_path):
    """Their config.json kept exploration and a seed in td3: they move, and match."""
    config = tiny_config(exploration=ExplorationConfig('gaussian', 0.3))
    old = json.loads(json.dumps(config.to_dict()))
    del old['exploration']
    old['td3'].update(exploration='gaussian', exploration_sigma=0.3, ou_theta=0.15, seed=0)
    assert PipelineConfig.from_dict(old) == config
    (tmp_path / 'config.json').write_text(json.dumps(old))
    RigPipeline(sim, config, tmp_path, progress=False)  # the same run: no error
    with pytest.raises(ValueError, match='different configuration'):
        RigPipeline(sim, tiny_config(), tmp_path, progress=False)  # OU noise: another run


@pytest.mark.parametrize('field, value', [('rl_steps', -1), ('image_size', 64),
                                          ('reward', 'manhattan'), ('eval_goals', 0)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


def test_vae_fine_tuning_refreshes_latents_and_is_checkpointed(sim, tmp_path):
    config = tiny_config(fine_tune_vae_every=60, fine_tune_vae_steps=5, reward='mahalanobis')
    RigPipeline(sim, config, tmp_path, progress=False).run()
    pretrained = checkpoints.load_checkpoint(tmp_path / 'vae.safetensors').modules['vae']
    tuned = checkpoints.load_checkpoint(tmp_path / 'rl.safetensors').modules['vae']
    assert any(not (pretrained[key] == tuned[key]).all() for key in pretrained
               if pretrained[key].is_floating_point())
    with np.load(tmp_path / 'replay.npz') as replay:
        from rig_ros.core.pipeline import LatentObserver
        from rig_ros.core.vae import ConvVAE
        vae = ConvVAE(config.vae)
        vae.load_state_dict(tuned)
        vae.eval()
        live = int(replay['frames'])
        # After the last refresh (step 120) every stored latent is the tuned VAE's encoding.
        encoded = LatentObserver(vae, config.preprocess_config).encode(replay['images'][:live])
        np.testing.assert_allclose(replay['obs'][:live], encoded, atol=1e-4)
