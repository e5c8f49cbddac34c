"""The in-process pipeline: stages run, results land in the run directory, runs resume."""

import dataclasses
import json

import numpy as np
import pytest

from rig_ros.core import checkpoints
from rig_ros.core.encoder import LATENT_VARIANCE_KEY
from rig_ros.core.evaluation import read_evaluations, read_rows
from rig_ros.core.noise import ExplorationConfig
from rig_ros.core.pipeline import (
    collect_images, evaluation_goals, exploration_states, LatentObserver, PipelineConfig,
    RigPipeline)
from rig_ros.core.preprocessing import preprocess
from rig_ros.core.resets import hand_in_goal_box
from rig_ros.core.skew_fit import SkewedGoalSampler, SkewedVAEFineTuning, SkewFitConfig
from rig_ros.core.td3 import TD3Config
from rig_ros.core.trainer import VAEFineTuning
from rig_ros.core.vae import ConvVAE, VAEConfig
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
                                          ('reward', 'manhattan'), ('eval_goals', 0),
                                          ('imagined_goals', 'replay'),
                                          ('sim_camera_elevation_deg', 10.0),
                                          ('sim_camera_elevation_deg', -120.0),
                                          ('crop', (14, 3, 56, 82)), ('crop', (0, 0, 0, 10)),
                                          ('crop', (0, 0, 10.5, 10))])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


def test_sim_options_carry_the_camera_only_when_set():
    assert tiny_config().sim_options() == {'task': 'reacher', 'seed': 0}
    options = tiny_config(sim_camera_elevation_deg=-45).sim_options(easy_puck_goals=True)
    assert options == {'task': 'reacher', 'seed': 0, 'camera_elevation_deg': -45.0,
                       'easy_puck_goals': True}
    with SawyerSim(SawyerSimConfig(**options)) as camera_sim:  # a sim takes them as they are
        assert camera_sim.config.camera_elevation_deg == -45.0
    assert tiny_config(sim_hide_arm=True).sim_options()['hide_arm'] is True


@pytest.mark.parametrize('until, rounds', [(0, [60, 120]), (90, [60])])
def test_vae_fine_tuning_refreshes_latents_and_is_checkpointed(sim, tmp_path, until, rounds):
    config = tiny_config(fine_tune_vae_every=60, fine_tune_vae_steps=5, reward='mahalanobis',
                         fine_tune_vae_until=until)
    RigPipeline(sim, config, tmp_path, progress=False).run()
    pretrained = checkpoints.load_checkpoint(tmp_path / 'vae.safetensors').modules['vae']
    tuned = checkpoints.load_checkpoint(tmp_path / 'rl.safetensors').modules['vae']
    assert any(not (pretrained[key] == tuned[key]).all() for key in pretrained
               if pretrained[key].is_floating_point())
    with np.load(tmp_path / 'replay.npz') as replay:
        vae = ConvVAE(config.vae)
        vae.load_state_dict(tuned)
        vae.eval()
        live = int(replay['frames'])
        # After the last refresh every stored latent, later ones too, is the tuned VAE's.
        encoded = LatentObserver(vae, config.preprocess_config).encode(replay['images'][:live])
        np.testing.assert_allclose(replay['obs'][:live], encoded, atol=1e-4)
    logged = read_rows(tmp_path / 'metrics.jsonl', 'fine_tune')
    assert [row['rl_step'] for row in logged] == rounds  # each round's, none after `until`
    assert all(np.isfinite(row['loss']) for row in logged)


class RecordingEnv:
    """A GoalEnv without physics that records resets, actions and goal states set."""

    action_dim = 2

    def __init__(self) -> None:
        self.events: list = []
        self.state = np.zeros(4)

    def reset(self, seed=None) -> None:
        self.events.append(('reset', seed))
        self.state = np.zeros(4)

    def step(self, action) -> None:
        self.events.append(('step', tuple(action)))

    def render(self, height=None, width=None) -> np.ndarray:
        image = np.zeros((84, 84, 3), np.uint8)
        image[..., 0] = int(self.state[2] * 100) % 256
        return image

    def sample_goal_state(self, rng) -> np.ndarray:
        return rng.uniform(0.1, 1.0, 4)

    def set_state_vector(self, state) -> None:
        self.events.append(('set_state', tuple(state)))
        self.state = np.asarray(state)


def plain_recipe_events(config: PipelineConfig) -> list:
    """Return the resets and actions of the recipe before reset-to-goal existed."""
    rng, events, action = np.random.default_rng(config.seed), [], None
    for index in range(config.collect_images):
        step = index % config.collect_episode_length
        if step == 0:
            events.append(('reset', int(rng.integers(2**31))))
        if step % config.collect_hold_steps == 0:
            action = rng.uniform(-1.0, 1.0, 2)
        events.append(('step', tuple(action)))
    return events


def test_collection_at_reset_to_goal_zero_is_the_plain_recipe():
    config = tiny_config(seed=3)
    env = RecordingEnv()
    collect_images(env, config, progress=False)
    assert env.events == plain_recipe_events(config)


def test_collection_holds_each_action_for_collect_hold_steps():
    config = tiny_config(seed=3, collect_hold_steps=7)
    env = RecordingEnv()
    collect_images(env, config, progress=False)
    assert env.events == plain_recipe_events(config)
    actions = [event[1] for event in env.events if event[0] == 'step']
    assert actions[:7] == [actions[0]] * 7 and actions[7] != actions[0]
    with pytest.raises(ValueError, match='collect_hold_steps'):
        tiny_config(collect_hold_steps=0)


def test_keeping_objects_starts_each_episode_with_the_puck_where_the_last_one_left_it():
    config = tiny_config(task='pusher', collect_images=400, collect_episode_length=20,
                         collect_hold_steps=10, collect_keep_objects=True)
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        plain = exploration_states(pusher, dataclasses.replace(
            config, collect_keep_objects=False), progress=False)
        kept = exploration_states(pusher, config, progress=False)
        pusher.reset()  # every reset puts the hand at the same start
        reset_hand = pusher.state_vector()[:2]
    np.testing.assert_allclose(kept[::20, :2], plain[::20, :2], atol=0.02)  # the hand re-set
    carried = 0
    for first in range(20, 400, 20):
        before, after = kept[first - 1, 2:], kept[first, 2:]
        reachable = np.all((before > [-0.25, 0.45]) & (before < [0.25, 0.8]))  # workspace
        if reachable and np.linalg.norm(before - reset_hand) > 0.08:
            assert np.linalg.norm(after - before) < 0.02  # one step of motion at most
            carried += np.linalg.norm(before - [0.0, 0.6]) > 0.02
    assert carried > 0  # some episode started with a pushed puck
    # Random exploration alone leaves the puck at its start more often.
    moved = [np.mean(np.linalg.norm(states[:, 2:] - [0.0, 0.6], axis=1) > 0.05)
             for states in (plain, kept)]
    assert moved[1] > moved[0]


def test_reset_to_goal_sets_a_share_of_episodes_to_goal_states_keeping_the_actions():
    config = tiny_config(collect_images=3000, collect_episode_length=10,
                         collect_reset_to_goal_probability=0.5)
    env = RecordingEnv()
    images = collect_images(env, config, progress=False)
    plain = plain_recipe_events(config)
    # The same resets and actions, each set state right after its episode's reset.
    assert [event for event in env.events if event[0] != 'set_state'] == plain
    resets = [i for i, event in enumerate(env.events) if event[0] == 'reset']
    goal_resets = [i for i in resets if env.events[i + 1][0] == 'set_state']
    assert len([e for e in env.events if e[0] == 'set_state']) == len(goal_resets)
    assert 0.4 < len(goal_resets) / len(resets) < 0.6
    assert len({env.events[i + 1] for i in goal_resets}) == len(goal_resets)  # sampled anew
    assert images[:, 0, 0, 0].any()  # the frames show the goal scenes
    again = RecordingEnv()
    collect_images(again, config, progress=False)
    assert again.events == env.events  # seeded


def test_reset_to_goal_on_the_pusher_moves_the_puck_in_the_frames():
    config = tiny_config(task='pusher', collect_images=40, collect_episode_length=10)
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        plain = collect_images(pusher, config, progress=False)
        moved = collect_images(pusher, dataclasses.replace(
            config, collect_reset_to_goal_probability=1.0), progress=False)
    # Every episode's first frame differs from the start scene's.
    for start in range(0, 40, 10):
        assert np.abs(plain[start].astype(int) - moved[start]).sum() > 0


class StateAtRender:
    """The pusher sim, noting its true state whenever a frame is rendered."""

    def __init__(self, sim: SawyerSim) -> None:
        self.sim = sim
        self.states: list = []

    def __getattr__(self, name: str):
        return getattr(self.sim, name)

    def render(self, height=None, width=None) -> np.ndarray:
        self.states.append(self.sim.state_vector().copy())
        return self.sim.render(height, width)


def test_exploration_states_are_the_states_behind_the_collected_frames():
    config = tiny_config(task='pusher', collect_images=40, collect_episode_length=10,
                         collect_reset_to_goal_probability=1.0)
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        recording = StateAtRender(pusher)
        collect_images(recording, config, progress=False)
        states = exploration_states(pusher, config, progress=False)
    assert states.shape == (40, pusher.state_vector().shape[0])
    np.testing.assert_allclose(states, np.stack(recording.states))
    assert np.ptp(states[:, 2:], axis=0).max() > 0.01  # the goal resets moved the puck


def test_hand_to_goal_box_starts_exploration_episodes_with_the_hand_in_the_box():
    config = tiny_config(task='pusher', collect_images=400, collect_episode_length=20,
                         collect_hold_steps=10, collect_keep_objects=True,
                         collect_hand_to_goal_box=True)
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        kept = exploration_states(pusher, dataclasses.replace(
            config, collect_hand_to_goal_box=False), progress=False)
        boxed = exploration_states(pusher, config, progress=False)
        again = exploration_states(pusher, config, progress=False)
    np.testing.assert_array_equal(boxed, again)  # seeded
    # Each episode's first frame (after one step) has its hand at most a step from the box;
    # the plain reset leaves it at the start (0, 0.5), outside.
    firsts = boxed[::20]
    near = np.all((firsts[:, :2] > [-0.07, 0.53]) & (firsts[:, :2] < [0.07, 0.67]), axis=1)
    assert near.all() and not hand_in_goal_box(kept[::20], 'pusher').any()
    assert len({tuple(hand.round(3)) for hand in firsts[:, :2]}) == len(firsts)  # drawn anew
    assert hand_in_goal_box(boxed, 'pusher').mean() > 2 * hand_in_goal_box(kept, 'pusher').mean()


def test_aimed_pushes_move_a_kept_puck_to_more_places():
    config = tiny_config(task='pusher', collect_images=1000, collect_episode_length=50,
                         collect_hold_steps=25, collect_keep_objects=True,
                         collect_hand_to_goal_box=True)
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        plain = exploration_states(pusher, config, progress=False)
        share_zero = exploration_states(pusher, dataclasses.replace(
            config, collect_aimed_pushes=0.0), progress=False)
        aimed = exploration_states(pusher, dataclasses.replace(
            config, collect_aimed_pushes=1.0), progress=False)
        tracked = exploration_states(pusher, dataclasses.replace(
            config, collect_aimed_pushes=1.0, collect_push_tracking='camera'), progress=False)
    np.testing.assert_array_equal(share_zero, plain)  # no draw at share 0

    def places(states: np.ndarray) -> int:  # distinct 2-cm cells the puck visited
        return len({tuple(cell) for cell in np.floor(states[:, 2:] / 0.02).astype(int)})

    def moving_steps(states: np.ndarray) -> float:
        return float(np.mean(np.linalg.norm(np.diff(states[:, 2:], axis=0), axis=1) > 1e-3))

    assert moving_steps(aimed) > 2 * moving_steps(plain)
    assert places(aimed) > 2 * places(plain)
    # The camera's tracker finds the puck well enough to push it as often.
    assert moving_steps(tracked) > 2 * moving_steps(plain)
    assert places(tracked) > 2 * places(plain)
    with pytest.raises(ValueError, match='collect_aimed_pushes'):
        tiny_config(collect_aimed_pushes=1.5)
    with pytest.raises(ValueError, match='collect_push_tracking'):
        tiny_config(collect_push_tracking='lidar')


def test_frame_goals_from_goal_states_are_rendered_goal_states_kept_for_resuming(tmp_path):
    config = tiny_config(task='pusher', imagined_goals='frames', frame_goals_goal_states=6)
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        pipeline = RigPipeline(pusher, config, tmp_path, progress=False)
        frames = pipeline.goal_frames()
        assert frames.shape == (6, config.image_size, config.image_size, 3)
        assert not pipeline.images_path.exists()  # the exploration frames are not needed
        with np.load(pipeline.goal_state_frames_path) as data:
            states = data['states']
        assert hand_in_goal_box(states, 'pusher').all()
        # Other goals than evaluation's, each frame its own state's.
        evaluation = evaluation_goals(pusher, 6, config.seed)
        assert np.abs(states[:, None] - evaluation[None]).sum(axis=2).min() > 1e-3
        assert len({frame.tobytes() for frame in frames}) == 6
        rendered = preprocess(pusher.render_goal(states[2], config.raw_height, config.raw_width),
                              config.preprocess_config)
        np.testing.assert_array_equal(frames[2], rendered)
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        resumed = RigPipeline(pusher, config, tmp_path, progress=False).goal_frames()
    np.testing.assert_array_equal(resumed, frames)
    for wrong in ({'imagined_goals': 'prior'}, {'frame_goals_from_replay': True},
                  {'frame_goals_hand_in_goal_box': True}, {'fine_tune_vae_every': 60}):
        with pytest.raises(ValueError, match='frame_goals_goal_states'):
            tiny_config(**{'imagined_goals': 'frames', 'frame_goals_goal_states': 4, **wrong})
    with pytest.raises(ValueError, match='frame_goals_goal_states must be >= 0'):
        tiny_config(imagined_goals='frames', frame_goals_goal_states=-1)


def test_camera_push_tracking_tracks_one_puck():
    config = tiny_config(task='multi_pusher', collect_images=10, collect_aimed_pushes=0.5,
                         collect_push_tracking='camera')
    with SawyerSim(SawyerSimConfig(task='multi_pusher')) as pushers:
        with pytest.raises(ValueError, match='one puck'):
            exploration_states(pushers, config, progress=False)


def test_frame_goals_come_from_the_frames_whose_hand_lies_in_the_hand_goal_box(tmp_path):
    config = tiny_config(task='pusher', imagined_goals='frames', collect_images=200,
                         frame_goals_hand_in_goal_box=True)
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        pipeline = RigPipeline(pusher, config, tmp_path, progress=False)
        images = pipeline.images()
        states = pipeline.image_states()
        np.testing.assert_allclose(states, exploration_states(pusher, config, progress=False))
        keep = hand_in_goal_box(states, 'pusher')
        assert 0 < keep.sum() < len(keep)  # the hand starts in the box and wanders out
        np.testing.assert_array_equal(pipeline.goal_frames(), images[keep])
        # A run collected before the states were saved replays its exploration for them.
        with np.load(pipeline.images_path) as data:
            np.savez_compressed(pipeline.images_path, images=data['images'])
        np.testing.assert_allclose(pipeline.image_states(), states)
    plain = dataclasses.replace(config, frame_goals_hand_in_goal_box=False)
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        assert len(RigPipeline(pusher, plain, tmp_path / 'plain', progress=False).goal_frames()
                   ) == 200
    # The hand starts below the box: one step of exploration leaves no goal frame.
    one = dataclasses.replace(config, collect_images=1)
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        with pytest.raises(ValueError, match='no exploration frame has the hand'):
            RigPipeline(pusher, one, tmp_path / 'one', progress=False).goal_frames()
    for wrong in ({'imagined_goals': 'prior'}, {'frame_goals_from_replay': True},
                  {'fine_tune_vae_every': 60}):
        with pytest.raises(ValueError, match='frame_goals_hand_in_goal_box'):
            tiny_config(**{'imagined_goals': 'frames', 'frame_goals_hand_in_goal_box': True,
                           **wrong})


def test_position_probe_reward_reads_the_frames_states_from_the_latents(tmp_path):
    config = tiny_config(task='pusher', collect_images=400, collect_reset_to_goal_probability=0.5,
                         rl_steps=60, reward_position_probe=True)
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        pipeline = RigPipeline(pusher, config, tmp_path, progress=False)
        trainer, observer, _ = pipeline.practise()
        probe = trainer.reward_fn.keywords['distance'].__self__
        # The reward is the distance between the positions read from the two latents.
        states = pipeline.image_states()
        latents = observer.encode(pipeline.images())
        np.testing.assert_allclose(trainer.reward_fn(latents[:5], latents[5:10]),
                                   -np.linalg.norm(probe(latents[:5]) - probe(latents[5:10]),
                                                   axis=1), rtol=1e-5)
        assert probe.positions(latents).shape == states.shape
        assert np.isfinite(probe.holdout_error_m).all()
        # A resumed run fits the same probe again (same VAE, same frames).
        resumed, _, _ = pipeline.practise()
        np.testing.assert_allclose(resumed.reward_fn.keywords['distance'].__self__.weights,
                                   probe.weights)
    for wrong in ({'reward': 'mahalanobis'}, {'fine_tune_vae_every': 60}):
        with pytest.raises(ValueError, match='reward_position_probe'):
            tiny_config(reward_position_probe=True, **wrong)


def test_position_probe_observation_gives_the_policy_positions_read_from_pixels(tmp_path):
    config = tiny_config(task='pusher', collect_images=400, collect_reset_to_goal_probability=0.5,
                         rl_steps=60, imagined_goals='frames', observe_position_probe=True,
                         vae=VAEConfig(latent_dim=6))
    with SawyerSim(SawyerSimConfig(task='pusher')) as pusher:
        pipeline = RigPipeline(pusher, config, tmp_path, progress=False)
        trainer, observer, curve = pipeline.practise()
        probe = observer.read
        states = pipeline.image_states()
        means = LatentObserver(observer.vae, config.preprocess_config).encode(pipeline.images())
        observed = observer.encode(pipeline.images())
        # Observations, goals and replay are the positions in spread units, not the latents.
        assert observed.shape == states.shape != means.shape
        np.testing.assert_allclose(observed, probe(means), rtol=1e-5)
        assert np.abs(observed.mean(axis=0)).max() < 0.1  # centred, as the oracle's state
        assert trainer.buffer.export()['obs'].shape[1] == states.shape[1]
        goals = trainer.prior_goal_sampler(50)
        assert np.min(np.linalg.norm(goals[:, None] - observed[None], axis=2), axis=1).max() < 1e-4
        # The reward is the straight line between them: the probe's ruler.
        np.testing.assert_allclose(trainer.reward_fn(observed[:5], observed[5:10]),
                                   -np.linalg.norm(observed[:5] - observed[5:10], axis=1),
                                   rtol=1e-5)
        # Read back in metres, the observed positions sit near the true ones.
        assert np.median(np.abs(probe.positions(means) - states)) < 0.05
        assert len(curve) >= 2 and curve[-1]['rl_step'] == 60
    for wrong in ({'imagined_goals': 'prior'}, {'reward': 'mahalanobis'},
                  {'fine_tune_vae_every': 60}, {'reward_position_probe': True}):
        with pytest.raises(ValueError, match='observe_position_probe'):
            tiny_config(**{'imagined_goals': 'frames', 'observe_position_probe': True, **wrong})


@pytest.mark.parametrize('value', [-0.1, 1.5, True])
def test_reset_to_goal_probability_is_checked(value):
    with pytest.raises(ValueError, match='collect_reset_to_goal_probability'):
        tiny_config(collect_reset_to_goal_probability=value)


def test_skew_fit_pipeline_skews_pretraining_goals_and_fine_tuning(sim, tmp_path):
    skew = SkewFitConfig(alpha=-1.0, density='latent_kde', reweight_every=5,
                         max_weight_ratio=10.0)
    config = tiny_config(skew_fit=skew, fine_tune_vae_every=60, fine_tune_vae_steps=3)
    assert PipelineConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    pipeline = RigPipeline(sim, config, tmp_path, progress=False)
    pipeline.run()
    rows = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
    pretrain = [row for row in rows if row['stage'] == 'pretrain'][-1]
    assert 1 <= pretrain['skew_effective_frames'] < 120  # trained on weighted batches
    # Resumed at the end: the trainer imagines goals from the replay's frames by weight.
    trainer, observer, _ = pipeline.practise()
    goals = trainer.prior_goal_sampler
    assert isinstance(goals, SkewedGoalSampler)
    drawn = goals(50)
    latents = observer.encode(trainer.buffer.images().copy())
    assert all(np.abs(latents - goal).max(axis=1).min() < 1e-4 for goal in drawn)
    assert isinstance(trainer.vae_stage, SkewedVAEFineTuning)


def test_imagined_goals_from_frames_are_the_vae_frames_latents_drawn_uniformly(sim, tmp_path):
    config = tiny_config(imagined_goals='frames', rl_steps=60)
    pipeline = RigPipeline(sim, config, tmp_path, progress=False)
    trainer, observer, _ = pipeline.practise()
    goals = trainer.prior_goal_sampler
    assert isinstance(goals, SkewedGoalSampler)
    np.testing.assert_allclose(goals.weights, 1 / 120)  # no skewing: every frame alike
    latents = observer.encode(pipeline.images())
    drawn = goals(50)
    assert all(np.abs(latents - goal).max(axis=1).min() < 1e-4 for goal in drawn)
    # Episodes pursued such goals too: every rollout goal is a frame's latent.
    saved = trainer.buffer.export()
    rollout_goals = saved['goal'][:saved['frames']][saved['has_next'][:saved['frames']] > 0]
    assert len(rollout_goals) == 60
    assert all(np.abs(latents - goal).max(axis=1).min() < 1e-4 for goal in rollout_goals)


def test_frame_goals_from_replay_are_the_practised_frames_latents(sim, tmp_path):
    config = tiny_config(imagined_goals='frames', frame_goals_from_replay=True, rl_steps=60)
    pipeline = RigPipeline(sim, config, tmp_path, progress=False)
    trainer, observer, _ = pipeline.practise()
    stored = trainer.buffer.latents().copy()
    vae_frames = observer.encode(pipeline.images())

    def among(pool: np.ndarray, goals: np.ndarray) -> list[bool]:
        return [bool(np.abs(pool - goal).max(axis=1).min() < 1e-4) for goal in goals]

    drawn = trainer.prior_goal_sampler(50)
    assert all(among(stored, drawn))
    assert not any(among(vae_frames, drawn))  # practice frames, not the VAE's exploration
    # The first episode's goal was drawn from an empty replay: a VAE frame's; later ones the
    # replay's (20-step episodes).
    saved = trainer.buffer.export()
    rollout_goals = saved['goal'][:saved['frames']][saved['has_next'][:saved['frames']] > 0]
    assert len(rollout_goals) == 60
    assert all(among(vae_frames, rollout_goals[:20]))
    assert all(among(stored, rollout_goals[20:]))
    assert not any(among(vae_frames, rollout_goals[20:]))


def test_fine_tuning_with_goals_from_the_replay_draws_the_refreshed_latents(sim, tmp_path):
    config = tiny_config(imagined_goals='frames', frame_goals_from_replay=True, rl_steps=60,
                         fine_tune_vae_every=30, fine_tune_vae_steps=5)
    trainer, _, _ = RigPipeline(sim, config, tmp_path, progress=False).practise()
    # Plain fine-tuning: no skewed refit of the VAE frames' goals, which nothing draws.
    assert type(trainer.vae_stage) is VAEFineTuning
    stored = trainer.buffer.latents().copy()
    drawn = trainer.prior_goal_sampler(20)
    assert all(np.abs(stored - goal).max(axis=1).min() < 1e-6 for goal in drawn)


@pytest.mark.parametrize('overrides', [{'imagined_goals': 'prior'},
                                       {'skew_fit': SkewFitConfig(alpha=-1.0)}])
def test_frame_goals_from_replay_needs_unskewed_frame_goals(overrides):
    with pytest.raises(ValueError, match='frame_goals_from_replay'):
        tiny_config(frame_goals_from_replay=True, **overrides)


def test_skew_fit_implies_goals_from_frames():
    assert PipelineConfig().imagined_goals == 'prior'
    assert tiny_config(skew_fit=SkewFitConfig(alpha=-0.5)).imagined_goals == 'frames'


def test_skew_fit_off_by_default_keeps_the_vae_prior():
    assert not PipelineConfig().skew_fit.enabled
    old = json.loads(json.dumps(tiny_config().to_dict()))
    del old['skew_fit'], old['collect_reset_to_goal_probability']
    assert PipelineConfig.from_dict(old) == tiny_config()  # older runs still resume
