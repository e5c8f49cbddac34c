"""The benchmarks' own arithmetic: pooled latency blocks and the pusher's per-task figures.

bench/ is outside the package; its scripts are loaded from the repository by path.
"""

import dataclasses
import json
import pathlib
from types import ModuleType
from typing import Any

from factories import load_script
import numpy as np
import pytest

from rig_ros.core import oracle
from rig_ros.core.oracle import GOAL_PARTS
from rig_ros.core.preprocessing import CropBox, PreprocessConfig

BENCH = pathlib.Path(__file__).resolve().parents[3] / 'bench'


def load_bench(name: str) -> ModuleType:
    """Import bench/<name>.py as a module (bench/ is not a package)."""
    return load_script(BENCH / f'{name}.py', name)


@pytest.fixture(scope='module')
def graph_latency() -> ModuleType:
    return load_bench('graph_latency')


@pytest.fixture(scope='module')
def pushing() -> ModuleType:
    return load_bench('pushing')


def latency_block(latencies: list[float], missed: int) -> dict[str, Any]:
    return {'latencies': latencies, 'missed': missed, 'transition_latencies': latencies[:3]}


def test_missed_frames_enter_the_tail_as_one_frame_period(graph_latency: ModuleType) -> None:
    blocks = [latency_block([0.005] * 99, 0), latency_block([0.005] * 98, 2)]
    pooled = graph_latency.summarise_blocks(blocks, frames=199)
    assert pooled['missed'] == 2
    assert pooled['n'] == 199
    assert pooled['max'] == pytest.approx(1e3 * graph_latency.FRAME_PERIOD_S)
    assert pooled['p99'] > 5.0  # two missed frames of 199 reach the 99th percentile
    assert pooled['transition_stamp_matches'] == 6


def test_blocks_without_missed_frames_keep_their_latencies(graph_latency: ModuleType) -> None:
    pooled = graph_latency.summarise_blocks([latency_block([0.004, 0.006], 0)] * 3, frames=6)
    assert (pooled['missed'], pooled['n'], pooled['max']) == (0, 6, 6.0)
    assert pooled['p50'] == pytest.approx(5.0)


def rig_run(seed: int, puck: list[float]) -> dict[str, Any]:
    curve = [{'env_steps_total': 5000, 'rig_success_rate': 0.0,
              'rig_final_puck_distance_median': float(np.median(puck))}]
    box = {'puck_distances': puck, 'hand_distances': [0.02] * len(puck)}
    return {'rig': {'seed': seed, 'curve': curve, 'stage_wall_s': {'practice': 1.0}},
            'boxes': {'default': box, 'easy': box}, 'wall_s': 2.0}


def baselines_run(oracle: list[float]) -> dict[str, Any]:
    methods = {'oracle': {'puck_distances': oracle, 'hand_distances': [0.01] * len(oracle)},
               'random': {'puck_distances': [0.12] * len(oracle),
                          'hand_distances': [0.15] * len(oracle)}}
    return {'default': methods, 'easy': methods, 'wall_s': 3.0}


def test_pusher_figures_pool_every_seeds_goals(pushing: ModuleType,
                                               tmp_path: pathlib.Path) -> None:
    config = pushing.pushing_config('pusher', 'skewfit', 0, True, 1000, 2)
    rig = {'skewfit': [rig_run(1, [0.10, 0.20]), rig_run(2, [0.30, 0.40])]}
    plot = tmp_path / 'pusher_skewfit_2seeds_learning_curve.png'
    figures = pushing.summarise('pusher', rig, [baselines_run([0.05, 0.07])] * 2, config, plot)
    assert figures['pusher_seeds'] == 2
    assert figures['pusher_skewfit_puck_distance_mean'] == pytest.approx(0.25)
    assert figures['pusher_skewfit_puck_distance_median_easy'] == pytest.approx(0.25)
    assert figures['pusher_oracle_puck_distance_mean'] == pytest.approx(0.06)
    assert plot.is_file()


def test_pusher_figures_without_baselines_name_only_the_variants(
        pushing: ModuleType, tmp_path: pathlib.Path) -> None:
    config = pushing.pushing_config('pusher', 'skewfit', 1, True, 1000, 2)
    figures = pushing.summarise('pusher', {'skewfit': [rig_run(1, [0.10, 0.30])]}, [],
                                config, tmp_path / 'curve.png')
    assert figures['pusher_seeds'] == 1
    assert figures['pusher_skewfit_puck_distance_mean'] == pytest.approx(0.20)
    assert not any(key.startswith(('pusher_oracle', 'pusher_random')) for key in figures)
    assert figures['pusher_baselines_wall_s_per_seed'] == []


def test_goals_only_skew_variant_keeps_rigs_vae_and_skews_the_goals(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, imagined_goals='frames')
    rig = pushing.pushing_config('pusher', 'rig', 0, True, 1000, 2, settings)
    skewed = pushing.pushing_config('pusher', 'skewgoals', 0, True, 1000, 2, settings)
    assert skewed.skew_fit.enabled and not skewed.skew_fit.skews_vae
    assert skewed.skew_fit.density == 'latent_kde'
    # Only the skewing differs from RIG's run: the same collection and VAE.
    assert dataclasses.replace(skewed, skew_fit=rig.skew_fit) == rig
    assert 'skewgoals' not in pushing.DEFAULT_VARIANTS


def test_pusher_figures_of_the_baselines_alone(pushing: ModuleType,
                                               tmp_path: pathlib.Path) -> None:
    config = pushing.pushing_config('pusher', 'rig', 0, True, 1000, 2)
    plot = tmp_path / 'curve.png'
    figures = pushing.summarise('pusher', {}, [baselines_run([0.05, 0.07])], config, plot)
    assert figures['pusher_seeds'] == 1
    assert figures['pusher_oracle_puck_distance_mean'] == pytest.approx(0.06)
    assert not any(key.startswith(('pusher_rig', 'pusher_skewfit')) for key in figures)
    assert plot.is_file()


def test_robot_recipe_settings_reach_the_config_and_name_their_folder(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, imagined_goals='frames',
                                   reset_to_goal_probability=0.0, fine_tune_vae_every=1000)
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    assert config.collect_reset_to_goal_probability == settings.reset_probability() == 0.0
    assert config.fine_tune_vae_every == 1000
    assert settings.tag() == '_latent16_goalsframes_reset0_finetune1000'
    # The oracle sees neither: its figures stay shared with the simulator recipe's runs.
    assert settings.baselines_tag() == ''
    default = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20)
    assert default.collect_reset_to_goal_probability == pushing.RESET_TO_GOAL_PROBABILITY
    assert default.fine_tune_vae_every == default.fine_tune_vae_until == 0
    early = dataclasses.replace(settings, fine_tune_vae_until=12_000)
    assert pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20,
                                  early).fine_tune_vae_until == 12_000
    assert early.tag() == '_latent16_goalsframes_reset0_finetune1000_until12000'


def test_episode_length_reaches_rig_and_the_oracle_and_names_both_folders(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, episode_length=100)
    for variant in pushing.VARIANTS:
        config = pushing.pushing_config('pusher', variant, 0, False, 50_000, 20, settings)
        assert config.episode_length == 100
        assert config.collect_episode_length == 50  # the VAE's frames are not its business
    assert settings.baselines_tag() == '_episode100'
    assert settings.tag() == '_latent16_episode100'
    both = pushing.RunSettings(replay_capacity=100_000, episode_length=100)
    assert both.baselines_tag() == '_replay100000_episode100'


def test_beta_and_vae_steps_reach_the_vae_and_name_only_rigs_folder(pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, beta=0.3125)
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    assert (config.vae.beta, config.vae.latent_dim) == (0.3125, 16)
    assert settings.tag() == '_latent16_beta0.3125'
    assert settings.baselines_tag() == ''  # the oracle sees no VAE
    longer = pushing.RunSettings(image_size=84, vae_steps=20_000)
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, longer)
    assert config.vae_steps == 20_000
    assert longer.tag() == '_image84_vaesteps20000' and longer.baselines_tag() == ''


def test_camera_settings_reach_rigs_frames_and_name_only_rigs_folder(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, camera_elevation=-45.0)
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    assert config.sim_options()['camera_elevation_deg'] == -45.0
    assert settings.tag() == '_latent16_elevation-45'
    assert settings.baselines_tag() == ''  # the oracle sees states, not frames
    ghost = pushing.RunSettings(latent_dim=16, hide_arm=True)
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, ghost)
    assert config.sim_options()['hide_arm'] is True
    assert (ghost.tag(), ghost.baselines_tag()) == ('_latent16_ghostarm', '')
    cropped = pushing.RunSettings(latent_dim=16, crop=(10, 3, 60, 78))
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, cropped)
    assert config.preprocess_config == PreprocessConfig(CropBox(10, 3, 60, 78), 48)
    assert (cropped.tag(), cropped.baselines_tag()) == ('_latent16_crop10-3-60x78', '')


def test_puck_visibility_shares_and_pushing_states() -> None:
    visibility = load_bench('puck_visibility')
    figures = visibility.shares(np.array([0.0, 0.1, 0.3, 1.0]))
    assert figures == {'hidden': 0.5, 'under_half': 0.75, 'median_visible': 0.2}
    rng = np.random.default_rng(0)
    low, high = np.array([-0.25, 0.45]), np.array([0.25, 0.8])
    for _ in range(50):
        goal = np.array([0.0, 0.6, rng.uniform(-0.2, 0.2), rng.uniform(0.5, 0.7)])
        state = visibility.pushing_state(goal, rng, low, high)
        np.testing.assert_array_equal(state[2:], goal[2:])  # the puck stays
        assert 0.045 <= np.linalg.norm(state[:2] - goal[2:]) <= 0.06 + 1e-9
        assert np.all(state[:2] >= low) and np.all(state[:2] <= high)


def test_relabel_shares_reach_rig_and_the_oracle_and_name_both_folders(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, relabel=(0.1, 0.3, 0.6))
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    shares = config.relabel
    assert (shares.fraction_rollout_goal, shares.fraction_prior_goal,
            shares.fraction_future_goal) == (0.1, 0.3, 0.6)
    assert settings.baselines_tag() == '_relabel0.1-0.3-0.6'
    assert settings.tag() == '_latent16_relabel0.1-0.3-0.6'
    assert pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20).relabel == (
        pushing.RelabelConfig())
    with pytest.raises(ValueError, match='sum to 1'):
        pushing.RunSettings(relabel=(0.5, 0.5, 0.5)).relabel_config()


def test_updates_per_step_reach_rig_and_the_oracle_and_name_both_folders(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, updates_per_step=8)
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    default = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20)
    assert default.td3.updates_per_step == 4
    assert config.td3 == dataclasses.replace(default.td3, updates_per_step=8)
    assert settings.baselines_tag() == '_updates8'
    assert settings.tag() == '_latent16_updates8'


def test_td3_batch_rate_and_widths_reach_rig_and_the_oracle_and_name_both_folders(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, updates_per_step=1, batch_size=512,
                                   learning_rate=3e-4, hidden_sizes=(256, 256, 256))
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    default = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20)
    assert (default.td3.batch_size, default.td3.actor_lr, default.td3.hidden_sizes) == (
        128, 1e-3, (400, 300))
    assert config.td3 == dataclasses.replace(
        default.td3, updates_per_step=1, batch_size=512, actor_lr=3e-4, critic_lr=3e-4,
        hidden_sizes=(256, 256, 256))
    assert settings.baselines_tag() == '_updates1_batch512_lr0.0003_hidden256x256x256'
    assert settings.tag() == '_latent16' + settings.baselines_tag()
    # Only what is set changes: the rate alone leaves batch and widths RIG's.
    rate_only = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20,
                                       pushing.RunSettings(learning_rate=3e-4))
    assert rate_only.td3 == dataclasses.replace(default.td3, actor_lr=3e-4, critic_lr=3e-4)


def test_frame_goals_from_replay_reach_rig_only_and_name_its_folder(pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, imagined_goals='frames',
                                   frame_goals_from_replay=True)
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    assert config.frame_goals_from_replay
    assert settings.tag() == '_latent16_goalsframes_fromreplay'
    assert settings.baselines_tag() == ''  # the oracle's goals are states
    default = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20)
    assert not default.frame_goals_from_replay


def test_oracle_goals_from_exploration_name_the_oracles_folder_with_its_collection(
        pushing: ModuleType) -> None:
    robot = pushing.RunSettings(latent_dim=16, reset_to_goal_probability=0.0,
                                oracle_goals='exploration')
    assert robot.baselines_tag() == '_oraclegoalsexploration-reset0'
    assert robot.tag() == '_latent16_reset0'  # RIG's runs are the same against any oracle
    # RIG's simulated recipe explores other states: another folder.
    assert (pushing.RunSettings(oracle_goals='exploration').baselines_tag()
            == '_oraclegoalsexploration-reset0.5')
    assert pushing.RunSettings(reset_to_goal_probability=0.0).baselines_tag() == ''
    # Exploration that keeps the puck and holds actions longer explores other states again.
    kept = pushing.RunSettings(reset_to_goal_probability=0.0, collect_hold_steps=25,
                               keep_objects=True, oracle_goals='exploration')
    assert kept.baselines_tag() == '_oraclegoalsexploration-reset0-hold25-keep'
    assert kept.tag().startswith('_reset0_hold25_keepobjects')
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, kept)
    assert (config.collect_hold_steps, config.collect_keep_objects) == (25, True)
    default = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20)
    assert (default.collect_hold_steps, default.collect_keep_objects) == (5, False)
    # Only the hands (or pucks) of exploration's states: a folder of its own each.
    hand = dataclasses.replace(kept, oracle_goals='exploration-hand')
    assert hand.baselines_tag() == '_oraclegoalsexploration-hand-reset0-hold25-keep'
    assert {part for part, _ in pushing.ORACLE_GOALS.values()} == set(GOAL_PARTS)
    assert dataclasses.replace(kept, oracle_goals='exploration-handbox').baselines_tag() == (
        '_oraclegoalsexploration-handbox-reset0-hold25-keep')


def test_oracle_shared_scale_names_the_oracles_folder(pushing: ModuleType) -> None:
    settings = pushing.RunSettings(oracle_shared_scale=True)
    assert settings.baselines_tag() == '_oraclescaleshared'
    assert settings.tag() == ''  # RIG's runs are read back against either oracle
    # The summaries that compare with it are named by it: they do not overwrite the others.
    seeds = range(3)
    assert pushing.run_name(['rig'], seeds, False, settings) == 'rig_3seeds_oraclescaleshared'
    assert pushing.run_name(['rig'], seeds, False, pushing.RunSettings()) == 'rig_3seeds'
    assert pushing.run_name(['rig'], range(1, 3), True, settings) == 'rig_seeds1-2_nobaselines'
    assert pushing.run_name([], seeds, False, settings) == 'baselines_3seeds_oraclescaleshared'


def test_frame_goals_hand_box_names_rigs_folder_and_reaches_the_config(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, imagined_goals='frames',
                                   reset_to_goal_probability=0.0, frame_goals_hand_box=True)
    assert settings.tag() == '_latent16_goalsframes_reset0_handbox'
    assert settings.baselines_tag() == ''  # the oracle's goals are its own
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    assert config.frame_goals_hand_in_goal_box
    with pytest.raises(ValueError, match='frame_goals_hand_in_goal_box'):
        pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, dataclasses.replace(
            settings, imagined_goals=None))


def test_hand_to_goal_box_names_rigs_folder_and_the_oracles_explored_goals(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, imagined_goals='frames',
                                   reset_to_goal_probability=0.0, keep_objects=True,
                                   hand_to_goal_box=True, frame_goals_hand_box=True)
    assert settings.tag() == '_latent16_goalsframes_reset0_keepobjects_starthandbox_handbox'
    assert settings.baselines_tag() == ''  # the oracle's goals are the goal space's
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    assert config.collect_hand_to_goal_box and config.collect_keep_objects
    # The oracle on the states explored that way: its own folder.
    explored = dataclasses.replace(settings, oracle_goals='exploration-handbox')
    assert explored.baselines_tag() == (
        '_oraclegoalsexploration-handbox-reset0-keep-starthandbox')


def test_aimed_pushes_name_rigs_folder_and_the_oracles_explored_goals(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, reset_to_goal_probability=0.0,
                                   keep_objects=True, hand_to_goal_box=True, aimed_pushes=0.5)
    assert settings.tag() == '_latent16_reset0_keepobjects_starthandbox_aim0.5'
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    assert config.collect_aimed_pushes == 0.5
    explored = dataclasses.replace(settings, oracle_goals='exploration-handbox')
    assert explored.baselines_tag() == (
        '_oraclegoalsexploration-handbox-reset0-keep-starthandbox-aim0.5')
    camera = dataclasses.replace(settings, push_tracking='camera')
    assert camera.tag() == '_latent16_reset0_keepobjects_starthandbox_aim0.5_trackcamera'
    assert pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20,
                                  camera).collect_push_tracking == 'camera'


def test_collect_images_names_rigs_folder_and_the_oracles_explored_goals(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, reset_to_goal_probability=0.0,
                                   collect_hold_steps=25, collect_images=20_000)
    assert settings.tag() == '_latent16_reset0_hold25_collect20000'
    assert settings.baselines_tag() == ''
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    assert config.collect_images == 20_000
    assert pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20).collect_images == 5000
    explored = dataclasses.replace(settings, oracle_goals='exploration')
    assert explored.baselines_tag() == '_oraclegoalsexploration-reset0-hold25-collect20000'


def test_position_probe_observation_names_rigs_folder_and_reaches_the_config(
        pushing: ModuleType) -> None:
    settings = pushing.RunSettings(latent_dim=16, imagined_goals='frames',
                                   observe_position_probe=True)
    assert settings.tag() == '_latent16_goalsframes_observeprobe'
    assert settings.baselines_tag() == ''
    config = pushing.pushing_config('pusher', 'rig', 0, False, 50_000, 20, settings)
    assert config.observe_position_probe and not config.reward_position_probe


@pytest.mark.parametrize('flags, field', [
    (['--reset-to-goal', '1.5'], 'collect_reset_to_goal_probability'),
    (['--beta', '-1'], 'beta'), (['--episode-length', '0'], 'episode_length'),
    (['--vae-steps', '0'], 'vae_steps'),
    (['--fine-tune-vae-until', '100'], 'fine_tune_vae_until'),
    (['--relabel', '0.5', '0.5', '0.5'], 'relabel'), (['--replay-capacity', '0'], 'replay'),
    (['--updates-per-step', '0'], 'updates_per_step'),
    (['--batch-size', '0'], 'batch_size'), (['--learning-rate', '0'], 'actor_lr'),
    (['--hidden-sizes', '400', '0'], 'hidden_sizes'),
    (['--frame-goals-from-replay'], 'frame_goals_from_replay'),
    (['--collect-hold-steps', '0'], 'collect_hold_steps'),
    (['--observe-position-probe'], 'observe_position_probe')])
def test_a_bad_pusher_setting_is_refused_before_anything_runs(
        pushing: ModuleType, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture, flags: list[str], field: str) -> None:
    monkeypatch.setattr('sys.argv', ['pushing.py', '--out', str(tmp_path), *flags])
    with pytest.raises(SystemExit) as exit_info:
        pushing.main()
    assert exit_info.value.code == 2 and field in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no run folder made


def test_a_finished_seed_is_read_back_only_for_its_own_configuration(
        pushing: ModuleType, tmp_path: pathlib.Path) -> None:
    config = pushing.pushing_config('pusher', 'rig', 0, True, 1000, 2)
    assert not pushing.check_run_config(tmp_path, config)  # nothing saved yet
    (tmp_path / 'config.json').write_text(json.dumps(config.to_dict()))
    (tmp_path / 'bench_seed.json').write_text(json.dumps(rig_run(0, [0.1, 0.2])))
    assert pushing.run_rig(config, tmp_path)['rig']['seed'] == 0
    longer = dataclasses.replace(config, episode_length=config.episode_length * 2)
    with pytest.raises(ValueError, match='different configuration'):
        pushing.run_rig(longer, tmp_path)


def test_the_oracle_checkpoints_beside_its_baselines_and_is_not_trained_twice(
        pushing: ModuleType, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = dataclasses.replace(pushing.pushing_config('pusher', 'rig', 0, True, 60, 2),
                                 rl_steps=60, checkpoint_every=30)
    path = tmp_path / 'pusher_baselines_seed0.json'
    practice_loop, starts = oracle.practice_loop, []

    def recorded(*args, **kwargs):
        starts.append(args[7])  # the step practice starts from
        return practice_loop(*args, **kwargs)

    monkeypatch.setattr(oracle, 'practice_loop', recorded)
    first = pushing.run_baselines(config, path)
    assert (pushing.oracle_checkpoints(path) / 'oracle_rl.safetensors').exists()
    path.unlink()  # lost after training (a crash while evaluating): the checkpoint is read back
    again = pushing.run_baselines(config, path)
    assert starts == [0, 60]
    assert again['default']['oracle'] == first['default']['oracle']  # the same policy


def test_learner_device_figures_name_each_device_and_compare_cuda_with_one_thread() -> None:
    bench = load_bench('learner_device')
    cpu = dict.fromkeys(bench.FIGURES, 100.0)
    cuda = {**cpu, 'td3_updates_per_s': 150.0, 'encode_one_frames_per_s': 64.0}
    flat = bench.compare({'cpu1': cpu, 'cuda': cuda})
    assert flat['td3_updates_per_s_cpu1'] == 100.0 and flat['td3_updates_per_s_cuda'] == 150.0
    assert flat['cuda_over_cpu1_td3_updates_per_s'] == 1.5
    assert flat['cuda_over_cpu1_encode_one_frames_per_s'] == 0.64
    assert not any(key.startswith('cuda_over') for key in bench.compare({'cpu1': cpu}))


def test_learner_device_rate_refuses_work_that_runs_out() -> None:
    bench = load_bench('learner_device')
    assert bench.rate(lambda: 5, 0.01) > 0
    with pytest.raises(RuntimeError, match='ran out'):
        bench.rate(lambda: 0, 0.01)


def test_discovery_figures_time_pairs_from_the_later_start() -> None:
    discovery = load_bench('discovery')
    # Peer 1 starts 1 s after peer 0; each hears the other 0.5 s after peer 1's start, except
    # peer 2 (started with peer 0), which peer 0 hears 3 s late and which never hears peer 1.
    run = [{'index': 0, 'created': 10.0, 'heard': {'1': 11.5, '2': 13.0}},
           {'index': 1, 'created': 11.0, 'heard': {'0': 11.5, '2': 11.2}},
           {'index': 2, 'created': 10.0, 'heard': {'0': 10.1}}]
    figures = discovery.discovery_figures([run], peers=3)
    assert figures['pairs'] == 6 and figures['undiscovered_pairs'] == 1
    # Pairs: 0.5, 3.0, 0.5, 0.2, 0.1; whole graph: peer 0 3.0 s, peer 1 0.5 s, peer 2 none.
    assert figures['pair_max_s'] == 3.0 and figures['pair_p50_s'] == 0.5
    assert (figures['whole_graph_median_s'], figures['whole_graph_max_s']) == (1.75, 3.0)
    # A peer without a report (it crashed) leaves its 4 pairs, both ways, undiscovered.
    assert discovery.discovery_figures([run[:2]], peers=3)['undiscovered_pairs'] == 4


@pytest.mark.parametrize('bench', ['discovery', 'camera_frames'])
@pytest.mark.parametrize('argv, message', [(['--configs', 'profile,bogus'], '--configs'),
                                           (['--configs', ','], '--configs'),
                                           (['--profile', '/nonexistent.xml'], 'no such file')])
def test_dds_benches_refuse_bad_transport_flags(bench, argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_bench(bench).main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_latent_distance_profile_shows_where_the_latent_stops_growing() -> None:
    latent_quality = load_bench('latent_quality')
    positions = np.stack([np.linspace(0.0, 0.4, 41), np.zeros(41)], axis=1)  # every cm to 40
    true = np.linalg.norm(positions[:, None] - positions[None], axis=-1)

    def profile(latents: np.ndarray) -> dict[str, Any]:
        latent = np.linalg.norm(latents[:, None] - latents[None], axis=-1)
        return latent_quality.distance_profile(latent, true)

    linear = profile(3.0 * positions)  # 0.03 per cm
    assert linear['rank_correlation'] == pytest.approx(1.0)
    assert all(bin_['latent_per_cm_median'] == pytest.approx(0.03) for bin_ in linear['bins'])
    assert [bin_['true_cm'] for bin_ in linear['bins']][0] == [0, 2]
    # A latent that saturates 10 cm out: far pairs all sit at the same latent distance.
    saturating = latent_quality.distance_profile(1 - np.exp(-true / 0.03), true)
    far = [bin_['latent_median'] for bin_ in saturating['bins'] if bin_['true_cm'][0] >= 15]
    near = [bin_['latent_median'] for bin_ in saturating['bins'] if bin_['true_cm'][1] <= 5]
    assert max(far) - min(far) < 0.1 * max(far) and max(near) < 0.9 * min(far)
    # It still orders every pair (monotone): the bins, not the rank, show the flattening.
    assert saturating['rank_correlation'] == pytest.approx(1.0)
    # A latent that orders positions at random ranks pairs no better than chance.
    shuffled = profile(3.0 * positions[np.random.default_rng(0).permutation(41)])
    assert abs(shuffled['rank_correlation']) < 0.2
