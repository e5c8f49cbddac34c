"""bench/pushing.py's starts from another folder: reused frames and VAE, continued practice."""

import dataclasses
import json
import pathlib
from types import ModuleType

from factories import load_script
import pytest

from rig_ros.core.pipeline import PipelineConfig

BENCH = pathlib.Path(__file__).resolve().parents[3] / 'bench'
FILES = ('images.npz', 'vae.safetensors', 'rl.safetensors', 'replay.npz', 'metrics.jsonl',
         'wall_s.json')


@pytest.fixture(scope='module')
def pushing() -> ModuleType:
    return load_script(BENCH / 'pushing.py', 'pushing')


def saved_run(run_dir: pathlib.Path, config: PipelineConfig,
              files: tuple[str, ...] = FILES) -> pathlib.Path:
    """Write a finished run directory: its config and a stand-in for each stage's file."""
    run_dir.mkdir(parents=True)
    (run_dir / 'config.json').write_text(json.dumps(config.to_dict()))
    for name in files:
        (run_dir / name).write_text(f'{name} of {run_dir.name}')
    return run_dir


def config_of(pushing: ModuleType, variant: str = 'rig', rl_steps: int = 50_000,
              **settings: object) -> PipelineConfig:
    return pushing.pushing_config('pusher', variant, 0, False, rl_steps, 20,
                                  pushing.RunSettings(latent_dim=16, **settings))


def test_frames_and_vae_are_reused_under_other_rl_settings(
        pushing: ModuleType, tmp_path: pathlib.Path) -> None:
    source = saved_run(tmp_path / 'a' / 'pusher_rig_seed0', config_of(pushing))
    target = tmp_path / 'b' / 'pusher_rig_seed0'
    config = config_of(pushing, learning_rate=3e-4, replay_capacity=100_000)
    assert pushing.start_from(source, target, config, practice=False, copy=False) == [
        'images.npz', 'vae.safetensors']
    assert not target.exists()  # a check copies nothing
    assert pushing.start_from(source, target, config, practice=False) == [
        'images.npz', 'vae.safetensors']
    assert (target / 'vae.safetensors').read_text() == 'vae.safetensors of pusher_rig_seed0'
    assert sorted(path.name for path in target.iterdir()) == ['images.npz', 'vae.safetensors']
    # A run that has started keeps what it has: it resumes by itself.
    (target / 'config.json').write_text(json.dumps(config.to_dict()))
    (target / 'vae.safetensors').write_text('its own')
    assert pushing.start_from(source, target, config, practice=False) == []
    assert (target / 'vae.safetensors').read_text() == 'its own'


def test_goals_skewed_alone_reuse_rigs_vae_but_a_skewed_vae_does_not(
        pushing: ModuleType, tmp_path: pathlib.Path) -> None:
    source = saved_run(tmp_path / 'pusher_rig_seed0', config_of(pushing))
    copied = pushing.start_from(source, tmp_path / 'skewgoals', config_of(pushing, 'skewgoals'),
                                practice=False)
    assert copied == ['images.npz', 'vae.safetensors']
    with pytest.raises(ValueError, match='skew_fit'):
        pushing.start_from(source, tmp_path / 'skewfit', config_of(pushing, 'skewfit'),
                           practice=False)


@pytest.mark.parametrize('settings, field', [
    ({'collect_images': 20_000}, 'collect_images'), ({'beta': 0.3}, 'vae'),
    ({'reset_to_goal_probability': 0.0}, 'collect_reset_to_goal_probability'),
    ({'image_size': 84}, 'image_size'),
    ({'camera_elevation': -45.0}, 'sim_camera_elevation_deg'),
    ({'hide_arm': True}, 'sim_hide_arm')])
def test_frames_of_another_collection_or_vae_are_refused_by_name(
        pushing: ModuleType, tmp_path: pathlib.Path, settings: dict, field: str) -> None:
    source = saved_run(tmp_path / 'pusher_rig_seed0', config_of(pushing))
    with pytest.raises(ValueError, match=field):
        pushing.start_from(source, tmp_path / 'new', config_of(pushing, **settings),
                           practice=False)
    assert not (tmp_path / 'new').exists()


def test_a_finished_run_continues_to_a_larger_budget_and_nothing_else(
        pushing: ModuleType, tmp_path: pathlib.Path) -> None:
    source = saved_run(tmp_path / 'pusher_rig_seed0', config_of(pushing))
    longer = config_of(pushing, rl_steps=100_000)
    assert (longer.eval_every, longer.checkpoint_every) == (25_000, 25_000)  # budget fields too
    copied = pushing.start_from(source, tmp_path / 'longer', longer, practice=True)
    assert copied == list(FILES)
    with pytest.raises(ValueError, match='td3'):
        pushing.start_from(source, tmp_path / 'other', config_of(
            pushing, rl_steps=100_000, batch_size=512), practice=True)
    with pytest.raises(ValueError, match='more than'):
        pushing.start_from(source, tmp_path / 'shorter', config_of(pushing, rl_steps=25_000),
                           practice=True)
    unfinished = saved_run(tmp_path / 'unfinished', config_of(pushing), FILES[:2])
    with pytest.raises(ValueError, match='rl.safetensors, replay.npz'):
        pushing.start_from(unfinished, tmp_path / 'from_unfinished', longer, practice=True)
    with pytest.raises(ValueError, match='no config.json'):
        pushing.start_from(tmp_path / 'nothing', tmp_path / 'x', longer, practice=True)


def test_the_cli_checks_every_source_before_it_copies_anything(
        pushing: ModuleType, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    source = tmp_path / 'source'
    saved_run(source / 'pusher_rig_seed0', config_of(pushing))
    # Seed 1's frames came from another collection: seed 0's must not be copied either.
    saved_run(source / 'pusher_rig_seed1', dataclasses.replace(
        pushing.pushing_config('pusher', 'rig', 1, False, 50_000, 20,
                               pushing.RunSettings(latent_dim=16)), collect_images=20_000))
    out = tmp_path / 'out'
    monkeypatch.setattr('sys.argv', [
        'pushing.py', '--out', str(out), '--tasks', 'pusher', '--variants', 'rig',
        '--no-baselines', '--latent-dim', '16', '--seeds', '2', '--learning-rate', '0.0003',
        '--frames-from', str(source)])
    with pytest.raises(SystemExit) as exit_info:
        pushing.main()
    assert exit_info.value.code == 2 and 'collect_images' in capsys.readouterr().err
    assert not list(out.rglob('*.npz'))
    monkeypatch.setattr('sys.argv', ['pushing.py', '--out', str(out), '--frames-from',
                                     str(source), '--continue-from', str(source)])
    with pytest.raises(SystemExit) as exit_info:
        pushing.main()
    assert exit_info.value.code == 2 and 'exclude' in capsys.readouterr().err
