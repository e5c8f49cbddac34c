"""Visual Pusher benchmark: RIG (and Skew-Fit) against the state oracle and random, from pixels.

Per task (pusher: one puck; multi_pusher: two, distances summed over pucks) and seed, every
method is evaluated on the same `--goals` goals of two boxes: the task's default box (puck
goals x +-0.2 m, y 0.5-0.7 m) and the easier x +-0.15 m box (`SawyerSimConfig.easy_puck_goals`).
RIG trains with imagined goals in the default-box scene; the VAE data come from random
exploration whose episodes are set to a sampled goal state at half of the resets
(`collect_reset_to_goal_probability` 0.5, RIG's simulated-data recipe, so the VAE sees the puck
everywhere). Variant 'skewfit' is the same run with Skew-Fit's skewing (alpha -1,
importance-sampled density) of the VAE's frames and of the imagined goals; variant 'skewgoals'
(not run unless named) skews the imagined goals alone (alpha -1, the 'latent_kde' density of
the goal frames' latents; RIG's VAE, trained on uniform frames). The oracle (TD3 +
HER on true state, the same budget) and a random policy are run once per task and seed.

Reported: final puck distance (mean, median) and hand distance, per box; learning curves
(environment steps, the VAE's collection included, on the x axis; median final puck distance);
wall time per seed. Resumable: each (task, variant, seed) keeps its run directory under --out; a
finished one is read back and an interrupted one resumes from its checkpoint (the oracle's
training too), both only with the configuration they were run with (another is refused).
`--jobs N` runs N of them at once, one process each (the seeds of a machine with more cores);
`--image-size` / `--latent-dim` / `--beta` / `--vae-steps` change the VAE, `--crop` the window
of the camera frame it sees, and `--imagined-goals frames` RIG's goals (their runs get their
own folder; the baselines, which see no VAE, are shared); `--episode-length` the practice and
evaluation episodes of RIG and the oracle alike, `--relabel` where sampled transitions' goals
come from and `--updates-per-step` TD3's updates per transition, `--batch-size`,
`--learning-rate` and `--hidden-sizes` its batch, Adam rate and layer widths (all of them get
their own folders, the oracle's too); `--frame-goals-from-replay` draws the frames' goals from
the replay, as the graph does, and `--frame-goals-hand-box` from the frames whose hand lies in
the hand-goal box; `--frame-goals-goal-states N` makes RIG's goals the frames of N rendered
goal states (what the oracle practises on; a simulator diagnostic that separates RIG's goals
from its latent);
`--reward-position-probe` measures RIG's reward between the hand and puck positions a probe
reads from the latents (a simulator diagnostic: the probe is fitted on true states) and
`--observe-position-probe` makes those positions RIG's observation and goals too (its reward
measures between them);
`--reset-to-goal 0 --fine-tune-vae-every N` is what a robot can do without a simulator's resets
(random exploration's frames, the VAE fine-tuned online on the practice frames;
`--fine-tune-vae-until M` stops the rounds after M practice steps); `--keep-objects` lets
exploration's re-sets move the hand only (the puck stays where it was pushed, as on a robot),
`--hand-to-goal-box` then moves the hand into the hand-goal box, `--collect-hold-steps N`
holds each random action N steps and `--aimed-pushes P` replaces that share of them by a push
aimed at the puck towards a point of the puck-goal box (the true puck, or with
`--push-tracking camera` a colour tracker's on the frame, what a robot can do; all name RIG's
folder);
`--oracle-goals exploration` gives the oracle RIG's frames' goals in state (the states random
exploration saw; a diagnostic with its own folder), `exploration-hand` / `exploration-pucks`
only their hand / pucks, the rest drawn from the goal space, `exploration-handbox` those
whose hand lies in the hand-goal box; `--oracle-shared-scale` standardises the oracle's
state by one spread for every coordinate (hand and puck centimetres weigh alike in its reward;
a diagnostic with its own folder). The oracle-only settings name the oracle's folder and the
summaries, not RIG's runs: RIG against another oracle reads its runs back. `--first-seed K`
starts the seeds at K (a seed split over sessions or machines: a later run over all of them
reads the finished ones back); `--no-baselines` runs the RIG variants alone (a later run over
the same seeds adds the oracle and random). `--frames-from FOLDER` starts each RIG run with the
frames and VAE of the same seed in another folder (checked to be the same collection and VAE):
only RL runs again, under other RL settings; `--continue-from FOLDER` continues that folder's
finished runs to a larger `--rl-steps` (checked to differ in the budget only; give another
`--out`, since the budget does not name the folder). Prints one JSON line last; every figure
goes to `figures_<tasks>_<variants>_<N>seeds.json` (`..._seedsK-L.json` from K,
`..._nobaselines` without the baselines, `..._oraclescaleshared` etc. against another oracle)
in the run folder, each task's curves to `<task>_<variants>_<N>seeds_learning_curve.png`
(named the same way).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import importlib
import json
import multiprocessing
import pathlib
import shutil
import sys
import time
from typing import Any

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'rig_ros'))
sys.path.insert(0, str(ROOT / 'bench'))

from rig_ros import report  # noqa: E402
from rig_ros.core.evaluation import Evaluation  # noqa: E402
from rig_ros.core.goals import IMAGINED_GOALS  # noqa: E402
from rig_ros.core.oracle import (  # noqa: E402
    evaluate_oracle, mixed_goal_states, StateScaler, train_oracle)
from rig_ros.core.pipeline import (  # noqa: E402
    check_run_config, evaluate_random, evaluate_rig, evaluation_goals, exploration_states,
    hand_in_goal_box, PipelineConfig, PUSH_TRACKING, RigPipeline, sampled_goal_states, saved_form)
from rig_ros.core.replay import RelabelConfig  # noqa: E402
from rig_ros.core.skew_fit import SkewFitConfig  # noqa: E402
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig  # noqa: E402

pusher_config = importlib.import_module('learning').pusher_config  # bench/learning.py's budget

TASKS = ('pusher', 'multi_pusher')
VARIANTS = ('rig', 'skewfit', 'skewgoals')
DEFAULT_VARIANTS = ('rig', 'skewfit')
BOXES = ('default', 'easy')
RESET_TO_GOAL_PROBABILITY = 0.5
SKEW_FIT = SkewFitConfig(alpha=-1.0)
SKEW_GOALS = SkewFitConfig(alpha=-1.0, density='latent_kde', skew_vae=False)
SKEWS = {'skewfit': SKEW_FIT, 'skewgoals': SKEW_GOALS}
ORACLE_GOALS = {'exploration': ('both', False), 'exploration-hand': ('hand', False),
                'exploration-pucks': ('pucks', False), 'exploration-handbox': ('both', True)}
"""--oracle-goals: (which part of the oracle's goal states comes from exploration's states,
whether only the states whose hand lies in the hand-goal box count: RIG's --frame-goals-hand-box
in state)."""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The settings the benchmark may change (None: the learning benchmark's)."""

    image_size: int | None = None
    latent_dim: int | None = None
    imagined_goals: str | None = None  # PipelineConfig.imagined_goals; skewfit: always 'frames'
    replay_capacity: int | None = None  # of RIG and the oracle alike
    reset_to_goal_probability: float | None = None  # None: RESET_TO_GOAL_PROBABILITY
    fine_tune_vae_every: int | None = None  # PipelineConfig.fine_tune_vae_every (None: 0)
    fine_tune_vae_until: int | None = None  # PipelineConfig.fine_tune_vae_until (None: 0)
    episode_length: int | None = None  # practice and evaluation episodes, RIG and the oracle
    relabel: tuple[float, float, float] | None = None  # RelabelConfig's fractions, both too
    beta: float | None = None  # VAEConfig.beta (None: RIG's 10/128)
    vae_steps: int | None = None  # PipelineConfig.vae_steps, pretraining minibatches (None: 5,000)
    updates_per_step: int | None = None  # TD3 updates per stored transition, RIG and the oracle
    batch_size: int | None = None  # TD3's replay batch, RIG and the oracle (None: 128)
    learning_rate: float | None = None  # TD3's actor and critic Adam rate, both (None: 1e-3)
    hidden_sizes: tuple[int, ...] | None = None  # TD3's layer widths, both (None: 400, 300)
    frame_goals_from_replay: bool | None = None  # PipelineConfig's (the graph's frames' goals)
    oracle_goals: str | None = None  # an ORACLE_GOALS key: the oracle's goals from explored states
    collect_hold_steps: int | None = None  # PipelineConfig.collect_hold_steps (None: 5)
    collect_images: int | None = None  # PipelineConfig.collect_images (None: 5,000)
    keep_objects: bool | None = None  # PipelineConfig.collect_keep_objects (None: False)
    hand_to_goal_box: bool | None = None  # PipelineConfig.collect_hand_to_goal_box
    aimed_pushes: float | None = None  # PipelineConfig.collect_aimed_pushes (None: 0)
    push_tracking: str | None = None  # PipelineConfig.collect_push_tracking (None: 'state')
    frame_goals_hand_box: bool | None = None  # PipelineConfig.frame_goals_hand_in_goal_box
    frame_goals_goal_states: int | None = None  # PipelineConfig.frame_goals_goal_states
    oracle_shared_scale: bool | None = None  # StateScaler(shared_scale=True) for the oracle
    reward_position_probe: bool | None = None  # PipelineConfig.reward_position_probe
    observe_position_probe: bool | None = None  # PipelineConfig.observe_position_probe
    camera_elevation: float | None = None  # PipelineConfig.sim_camera_elevation_deg (None: -65)
    hide_arm: bool | None = None  # PipelineConfig.sim_hide_arm: frames without the arm's links
    crop: tuple[int, int, int, int] | None = None  # PipelineConfig.crop (top, left, height, width)

    def tag(self) -> str:
        """Return a suffix naming the settings that differ ('' for none)."""
        return ''.join(f'_{name}{value:g}' if isinstance(value, float) else f'_{name}{value}'
                       for name, value in (
                           ('image', self.image_size), ('latent', self.latent_dim),
                           ('elevation', self.camera_elevation),
                           ('crop', None if self.crop is None
                            else '{}-{}-{}x{}'.format(*self.crop)),
                           ('ghost', 'arm' if self.hide_arm else None),
                           ('goals', self.imagined_goals),
                           ('reset', self.reset_to_goal_probability),
                           ('hold', self.collect_hold_steps),
                           ('collect', self.collect_images),
                           ('keep', 'objects' if self.keep_objects else None),
                           ('start', 'handbox' if self.hand_to_goal_box else None),
                           ('aim', self.aimed_pushes), ('track', self.push_tracking),
                           ('finetune', self.fine_tune_vae_every),
                           ('until', self.fine_tune_vae_until), ('beta', self.beta),
                           ('vaesteps', self.vae_steps),
                           ('from', 'replay' if self.frame_goals_from_replay else None),
                           ('hand', 'box' if self.frame_goals_hand_box else None),
                           ('goalstates', self.frame_goals_goal_states),
                           ('reward', 'probe' if self.reward_position_probe else None),
                           ('observe', 'probe' if self.observe_position_probe else None))
                       if value is not None
                       ) + self.shared_tag()

    def reset_probability(self) -> float:
        """Return the collection's reset-to-goal share these settings run with."""
        return (RESET_TO_GOAL_PROBABILITY if self.reset_to_goal_probability is None
                else self.reset_to_goal_probability)

    def shared_tag(self) -> str:
        """Return the suffix of the settings RIG and the oracle both see ('' for none)."""
        relabel = None if self.relabel is None else '-'.join(f'{share:g}'
                                                             for share in self.relabel)
        rate = None if self.learning_rate is None else f'{self.learning_rate:g}'
        hidden = None if self.hidden_sizes is None else 'x'.join(map(str, self.hidden_sizes))
        return ''.join(f'_{name}{value}' for name, value in (
            ('replay', self.replay_capacity), ('episode', self.episode_length),
            ('relabel', relabel), ('updates', self.updates_per_step),
            ('batch', self.batch_size), ('lr', rate), ('hidden', hidden)) if value is not None)

    def oracle_tag(self) -> str:
        """Return the suffix of the settings only the oracle sees ('' for none).

        They name the oracle's folder and the summaries that compare with it, not RIG's runs.
        """
        # Explored states depend on the collection: its resets and actions name the folder too.
        oracle_goals = (None if self.oracle_goals is None
                        else f'{self.oracle_goals}-reset{self.reset_probability():g}'
                        + ('' if self.collect_hold_steps is None
                           else f'-hold{self.collect_hold_steps}')
                        + ('' if self.collect_images is None
                           else f'-collect{self.collect_images}')
                        + ('-keep' if self.keep_objects else '')
                        + ('-starthandbox' if self.hand_to_goal_box else '')
                        + ('' if self.aimed_pushes is None else f'-aim{self.aimed_pushes:g}')
                        + ('' if self.push_tracking is None else f'-track{self.push_tracking}'))
        return ''.join(f'_{name}{value}' for name, value in (
            ('oraclegoals', oracle_goals),
            ('oraclescale', 'shared' if self.oracle_shared_scale else None)) if value is not None)

    def baselines_tag(self) -> str:
        """Return the suffix of the oracle's folder: every setting it sees ('' for none)."""
        return self.shared_tag() + self.oracle_tag()

    def relabel_config(self) -> RelabelConfig | None:
        """Return the relabelling these settings ask for (None: the pipeline's)."""
        return None if self.relabel is None else RelabelConfig(*self.relabel)


def pushing_config(task: str, variant: str, seed: int, quick: bool, rl_steps: int,
                   goals: int, settings: RunSettings = RunSettings()) -> PipelineConfig:
    """Learning benchmark's pusher budget, the RIG data recipe, and the variant's skewing."""
    config = dataclasses.replace(
        pusher_config(seed, quick, rl_steps), task=task, eval_goals=goals,
        collect_reset_to_goal_probability=settings.reset_probability())
    if settings.image_size is not None:
        config = dataclasses.replace(config, image_size=settings.image_size)
    if settings.latent_dim is not None:
        config = dataclasses.replace(config, vae=dataclasses.replace(
            config.vae, latent_dim=settings.latent_dim))
    if settings.vae_steps is not None:
        config = dataclasses.replace(config, vae_steps=settings.vae_steps)
    if settings.beta is not None:
        config = dataclasses.replace(config, vae=dataclasses.replace(config.vae,
                                                                     beta=settings.beta))
    if settings.imagined_goals is not None:
        config = dataclasses.replace(config, imagined_goals=settings.imagined_goals)
    if settings.replay_capacity is not None:
        config = dataclasses.replace(config, replay_capacity=settings.replay_capacity)
    if settings.collect_hold_steps is not None:
        config = dataclasses.replace(config, collect_hold_steps=settings.collect_hold_steps)
    if settings.hide_arm:
        config = dataclasses.replace(config, sim_hide_arm=True)
    if settings.camera_elevation is not None:
        config = dataclasses.replace(config, sim_camera_elevation_deg=settings.camera_elevation)
    if settings.crop is not None:
        config = dataclasses.replace(config, crop=settings.crop)
    if settings.collect_images is not None:
        config = dataclasses.replace(config, collect_images=settings.collect_images)
    if settings.keep_objects:
        config = dataclasses.replace(config, collect_keep_objects=True)
    if settings.hand_to_goal_box:
        config = dataclasses.replace(config, collect_hand_to_goal_box=True)
    if settings.aimed_pushes is not None:
        config = dataclasses.replace(config, collect_aimed_pushes=settings.aimed_pushes)
    if settings.push_tracking is not None:
        config = dataclasses.replace(config, collect_push_tracking=settings.push_tracking)
    if settings.fine_tune_vae_every is not None:
        config = dataclasses.replace(config, fine_tune_vae_every=settings.fine_tune_vae_every)
    if settings.fine_tune_vae_until is not None:
        config = dataclasses.replace(config, fine_tune_vae_until=settings.fine_tune_vae_until)
    if settings.episode_length is not None:
        config = dataclasses.replace(config, episode_length=settings.episode_length)
    if settings.relabel is not None:
        config = dataclasses.replace(config, relabel=settings.relabel_config())
    if settings.frame_goals_from_replay:
        config = dataclasses.replace(config, frame_goals_from_replay=True)
    if settings.frame_goals_hand_box:
        config = dataclasses.replace(config, frame_goals_hand_in_goal_box=True)
    if settings.frame_goals_goal_states is not None:
        config = dataclasses.replace(config,
                                     frame_goals_goal_states=settings.frame_goals_goal_states)
    if settings.reward_position_probe:
        config = dataclasses.replace(config, reward_position_probe=True)
    if settings.observe_position_probe:
        config = dataclasses.replace(config, observe_position_probe=True)
    td3 = {name: value for name, value in (
        ('updates_per_step', settings.updates_per_step), ('batch_size', settings.batch_size),
        ('actor_lr', settings.learning_rate), ('critic_lr', settings.learning_rate),
        ('hidden_sizes', settings.hidden_sizes)) if value is not None}
    if td3:
        config = dataclasses.replace(config, td3=dataclasses.replace(config.td3, **td3))
    if variant in SKEWS:
        config = dataclasses.replace(config, skew_fit=SKEWS[variant])
    return config


def box_goals(config: PipelineConfig) -> dict[str, np.ndarray]:
    """Return evaluation goal states of both boxes (the default box's: the pipeline's own)."""
    goals = {}
    for box in BOXES:
        options = config.sim_options(easy_puck_goals=box == 'easy')
        with SawyerSim(SawyerSimConfig(**options)) as sim:
            goals[box] = evaluation_goals(sim, config.eval_goals, config.seed)
    return goals


def figures_of(evaluation: Evaluation) -> dict[str, Any]:
    """Per-goal distances and their summary."""
    return {'puck_distances': evaluation.puck_distance,
            'hand_distances': evaluation.hand_distance,
            'puck_distance_mean': float(np.mean(evaluation.puck_distance)),
            'puck_distance_median': float(np.median(evaluation.puck_distance)),
            'hand_distance_mean': float(np.mean(evaluation.hand_distance)),
            'hand_distance_median': float(np.median(evaluation.hand_distance)),
            'success_rate': evaluation.success_rate}


def oracle_checkpoints(path: pathlib.Path) -> pathlib.Path:
    """Return the folder where the oracle of the baselines file `path` checkpoints its training."""
    return path.with_name(f'{path.stem}_oracle')


def run_baselines(config: PipelineConfig, path: pathlib.Path,
                  oracle_goals: str | None = None,
                  oracle_shared_scale: bool = False) -> dict[str, Any]:
    """Oracle and random policy of one task and seed on both boxes' goals (read back if done).

    The oracle's training checkpoints beside `path` (`oracle_checkpoints`) and resumes there.

    A file of another budget (RL steps, goals) is refused: each budget needs its own --out.
    `oracle_goals` 'exploration': the oracle practises on goals drawn from the states of RIG's
    random exploration (`exploration_states`, the collection's steps) rather than the goal space;
    'exploration-hand' / 'exploration-pucks': only their hand / pucks, the rest of each goal
    drawn from the goal space (`mixed_goal_states`); 'exploration-handbox': the states whose
    hand lies in the hand-goal box. `oracle_shared_scale`: `StateScaler`'s shared spread.
    """
    if path.exists():
        figures = json.loads(path.read_text())
        budget = {key: figures.get(key) for key in ('rl_steps', 'eval_goals')}
        if any(value is not None and value != getattr(config, key)
               for key, value in budget.items()):
            raise ValueError(f'{path} holds baselines of another budget ({budget}); '
                             'use another --out')
        return figures
    goals = box_goals(config)
    start = time.perf_counter()
    with SawyerSim(SawyerSimConfig(task=config.task, seed=config.seed)) as sim:
        scaler = StateScaler(sim, seed=config.seed, shared_scale=oracle_shared_scale)
        goal_states = None
        if oracle_goals is not None:
            part, hand_box = ORACLE_GOALS[oracle_goals]
            explored = exploration_states(sim, config)
            if hand_box:
                explored = explored[hand_in_goal_box(explored, config.task)]
            goal_states = explored
            if part != 'both':  # 'both' draws nothing: its goals stay those of earlier runs
                goal_states = mixed_goal_states(
                    explored, sampled_goal_states(sim, len(explored), (config.seed, 3)), part)
        policy, train_s = train_oracle(sim, config, scaler, goal_states=goal_states,
                                       checkpoint_dir=oracle_checkpoints(path))
        figures = {box: {'oracle': figures_of(evaluate_oracle(sim, policy, config, scaler,
                                                              goals[box])),
                         'random': figures_of(evaluate_random(sim, config, goals[box]))}
                   for box in BOXES}
    figures.update(oracle_train_s=train_s, wall_s=time.perf_counter() - start,
                   rl_steps=config.rl_steps, eval_goals=config.eval_goals)
    path.write_text(json.dumps(figures))
    return figures


def run_rig(config: PipelineConfig, run_dir: pathlib.Path) -> dict[str, Any]:
    """Run RIG's pipeline of one (task, variant, seed), then its final policy on both boxes."""
    path = run_dir / 'bench_seed.json'
    # A finished seed is read back only for the configuration it was run with.
    if check_run_config(run_dir, config) and path.exists():
        return json.loads(path.read_text())
    goals = box_goals(config)
    with SawyerSim(SawyerSimConfig(**config.sim_options())) as sim:
        pipeline = RigPipeline(sim, config, run_dir)
        result = pipeline.run()
        start = time.perf_counter()
        # Resumed at its last checkpoint (the end): the final policy and VAE, no more practice.
        trainer, observer, _ = pipeline.practise()
        policy = trainer.acting_policy(config.exploration)
        boxes = {box: figures_of(evaluate_rig(sim, policy, observer, config, goals[box]))
                 for box in BOXES}
    figures = {'rig': result, 'boxes': boxes,
               'wall_s': result['wall_s'] + time.perf_counter() - start}
    path.write_text(json.dumps(figures))
    return figures


FRAME_FILES = ('images.npz', 'vae.safetensors')
PRACTICE_FILES = ('rl.safetensors', 'replay.npz', 'metrics.jsonl', 'wall_s.json')
BUDGET_FIELDS = ('rl_steps', 'eval_every', 'checkpoint_every')
FRAME_FIELDS = ('task', 'seed', 'raw_height', 'raw_width', 'crop', 'sim_camera_elevation_deg',
                'sim_hide_arm', 'image_size', 'vae', 'vae_steps')
"""With the collection's fields (`collect_*`) and a VAE-skewing `skew_fit`: what decides a
run's frames and pretrained VAE."""


def frames_view(config: PipelineConfig) -> dict[str, Any]:
    """Return the fields of `config` that decide its frames and pretrained VAE."""
    values = saved_form(config)
    view = {key: value for key, value in values.items()
            if key in FRAME_FIELDS or key.startswith('collect_')}
    view['skew_fit'] = values['skew_fit'] if config.skew_fit.skews_vae else None
    return view


def start_from(source_dir: pathlib.Path, run_dir: pathlib.Path, config: PipelineConfig,
               practice: bool, copy: bool = True) -> list[str]:
    """Copy another run's frames and VAE (`practice`: and its practice) into a new run directory.

    `practice` continues a finished run to a larger budget: the source must differ from
    `config` in its budget only (`BUDGET_FIELDS`, no more RL steps than `config`). Otherwise
    the source must have collected and pretrained as `config` would (`frames_view`), and only
    RL starts afresh. Returns the names copied; nothing when `run_dir` already holds a run (it
    resumes by itself; `copy` False: what would be copied). Raises ValueError naming the fields
    that differ.
    """
    if (run_dir / 'config.json').exists():
        return []
    saved = source_dir / 'config.json'
    if not saved.exists():
        raise ValueError(f'{source_dir} holds no run to start from (no config.json)')
    source = PipelineConfig.from_dict(json.loads(saved.read_text()))
    if practice:
        if source.rl_steps > config.rl_steps:
            raise ValueError(f'{source_dir} ran {source.rl_steps} RL steps, more than the '
                             f'{config.rl_steps} asked for')
        ours, theirs = ({key: value for key, value in saved_form(c).items()
                         if key not in BUDGET_FIELDS} for c in (config, source))
        names = FRAME_FILES + PRACTICE_FILES
    else:
        ours, theirs = frames_view(config), frames_view(source)
        names = FRAME_FILES
    differing = sorted(key for key in ours.keys() | theirs.keys()
                       if ours.get(key) != theirs.get(key))
    if differing:
        raise ValueError(f'{source_dir} was run with other {", ".join(differing)}')
    required = FRAME_FILES + (('rl.safetensors', 'replay.npz') if practice else ())
    missing = [name for name in required if not (source_dir / name).exists()]
    if missing:
        raise ValueError(f'{source_dir} lacks {", ".join(missing)}')
    copied = [name for name in names if (source_dir / name).exists()
              and not (run_dir / name).exists()]
    if not copy:
        return copied
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in copied:
        shutil.copy2(source_dir / name, run_dir / name)
    return copied


def run_name(variants: list[str], seeds: range, no_baselines: bool,
             settings: RunSettings) -> str:
    """Return the name of a run's summary and plots: what ran, and which oracle it compares with.

    A run of some seeds or variants, or against another oracle, must not overwrite another's.
    """
    seeds_name = f'{len(seeds)}seeds' if seeds[0] == 0 else f'seeds{seeds[0]}-{seeds[-1]}'
    return (f'{"+".join(variants) or "baselines"}_{seeds_name}'
            + ('_nobaselines' if no_baselines else settings.oracle_tag()))


def pooled(runs: list[dict[str, Any]], method: str, box: str, key: str) -> np.ndarray:
    """Per-goal distances of every seed."""
    return np.concatenate([run[box][method][key] for run in runs])


def summarise(task: str, rig: dict[str, list[dict]], baselines: list[dict],
              config: PipelineConfig, plot_path: pathlib.Path) -> dict[str, Any]:
    """Figures of one task, keyed `<task>_<method>_<figure>[_easy]`, and its curve plot."""
    seeds = len(baselines) if baselines else max(len(runs) for runs in rig.values())
    figures: dict[str, Any] = {f'{task}_seeds': seeds,
                               f'{task}_rl_steps': config.rl_steps,
                               f'{task}_collect_images': config.collect_images}
    for box in BOXES:
        suffix = '' if box == 'default' else '_easy'
        methods = {variant: [{box: {variant: run['boxes'][box]}} for run in runs]
                   for variant, runs in rig.items()}
        if baselines:  # --no-baselines: the variants alone
            methods.update({name: baselines for name in ('oracle', 'random')})
        for method, runs in methods.items():
            puck = pooled(runs, method, box, 'puck_distances')
            hand = pooled(runs, method, box, 'hand_distances')
            figures.update({
                f'{task}_{method}_puck_distance_mean{suffix}': float(np.mean(puck)),
                f'{task}_{method}_puck_distance_median{suffix}': float(np.median(puck)),
                f'{task}_{method}_hand_distance_mean{suffix}': float(np.mean(hand)),
                f'{task}_{method}_hand_distance_median{suffix}': float(np.median(hand))})
    for variant, runs in rig.items():
        figures[f'{task}_{variant}_wall_s_per_seed'] = [run['wall_s'] for run in runs]
        figures[f'{task}_{variant}_stage_wall_s'] = [run['rig']['stage_wall_s'] for run in runs]
    figures[f'{task}_baselines_wall_s_per_seed'] = [run['wall_s'] for run in baselines]
    curves = {f'{variant} seed {run["rig"]["seed"]}': run['rig']['curve']
              for variant, runs in rig.items() for run in runs}
    references = {f'{method} (median)': figures[f'{task}_{method}_puck_distance_median']
                  for method in ('oracle', 'random') if baselines}
    report.plot_learning_curves(
        curves, plot_path,
        f'{task}: RIG from pixels, final puck distance', references=references,
        axes=report.CurveAxes(
            x_key='env_steps_total', x_label='environment steps (collection included)',
            success_label=('success rate (hand + puck distance < '
                           f'{100 * config.success_threshold_m:g} cm)'),
            distance_key='rig_final_puck_distance_median',
            distance_label='median final puck distance (cm)'))
    return figures


@dataclasses.dataclass(frozen=True)
class Work:
    """One run of the benchmark: RIG of a variant, or the baselines, of a task and seed."""

    task: str
    variant: str  # a VARIANTS entry or 'baselines'
    seed: int
    config: PipelineConfig
    path: pathlib.Path  # RIG: the run directory; baselines: the figures file
    oracle_goals: str | None = None  # baselines: RunSettings.oracle_goals
    oracle_shared_scale: bool = False  # baselines: RunSettings.oracle_shared_scale

    def __str__(self) -> str:
        name = 'oracle + random' if self.variant == 'baselines' else self.variant
        return f'{self.task} {name} seed {self.seed}'


def run_work(item: Work) -> str:
    """Run (or read back) one item in a worker process; return its name."""
    torch.set_num_threads(1)
    if item.variant == 'baselines':
        run_baselines(item.config, item.path, item.oracle_goals, item.oracle_shared_scale)
    else:
        run_rig(item.config, item.path)
    return str(item)


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--quick', action='store_true', help='smoke-sized budgets')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--first-seed', type=int, default=0,
                        help='seeds run are first-seed .. first-seed + seeds - 1 (another '
                             "session's or machine's seeds are read back from the same folder "
                             'when a later run spans them)')
    parser.add_argument('--rl-steps', type=int, default=50_000)
    parser.add_argument('--goals', type=int, default=None,
                        help='evaluation goals per box (default 20; --quick: 5)')
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(DEFAULT_VARIANTS),
                        help='RIG variants (default: rig skewfit; skewgoals only when named)')
    parser.add_argument('--tasks', nargs='+', choices=TASKS, default=list(TASKS))
    parser.add_argument('--out', default=str(ROOT / 'runs' / 'bench_pushing'))
    parser.add_argument('--image-size', type=int, choices=(48, 84), default=None,
                        help="the VAE's input size (default: the learning benchmark's, 48)")
    parser.add_argument('--latent-dim', type=int, default=None,
                        help="the VAE's latent size (default: the learning benchmark's, 4)")
    parser.add_argument('--beta', type=float, default=None,
                        help="the VAE's KL weight (default: RIG's, 10/128 = 0.078125)")
    parser.add_argument('--vae-steps', type=int, default=None,
                        help="the VAE's pretraining minibatches (default: the learning "
                             "benchmark's, 5,000)")
    parser.add_argument('--imagined-goals', choices=IMAGINED_GOALS, default=None,
                        help="RIG's imagined goals: the VAE prior (default) or the latents of "
                             "the VAE's frames (Skew-Fit's source; skewfit always uses these)")
    parser.add_argument('--replay-capacity', type=int, default=None,
                        help='replay size of RIG and the oracle, in transitions (default: the '
                             "pipeline's, 20,000)")
    parser.add_argument('--reset-to-goal', type=float, default=None,
                        help="share of the VAE collection's episodes set to a sampled goal "
                             f"state (default {RESET_TO_GOAL_PROBABILITY}, RIG's simulated-data "
                             'recipe; 0: what a robot can do, random exploration alone)')
    parser.add_argument('--fine-tune-vae-every', type=int, default=None,
                        help='practice steps between online VAE fine-tuning rounds on the '
                             "replay's frames (default 0: the VAE stays as pretrained)")
    parser.add_argument('--fine-tune-vae-until', type=int, default=None,
                        help='practice steps after which the fine-tuning rounds stop and the '
                             'VAE stays as the last round left it (default 0: to the end)')
    parser.add_argument('--episode-length', type=int, default=None,
                        help='steps of a practice episode and of an evaluation attempt, RIG '
                             "and the oracle alike (default: the pipeline's, 50; rlkit's RIG "
                             'pusher used 100)')
    parser.add_argument('--relabel', type=float, nargs=3, default=None,
                        metavar=('ROLLOUT', 'IMAGINED', 'FUTURE'),
                        help="shares of sampled transitions whose goal is the episode's own, "
                             'an imagined one, or one achieved later in the episode, RIG and '
                             "the oracle alike (default: the pipeline's, 0.2 0.5 0.3)")
    parser.add_argument('--frame-goals-from-replay', action='store_true',
                        help="with --imagined-goals frames: draw RIG's goals from the replay's "
                             "latents (the frames practised so far, as the graph's learner and "
                             "goal scheduler do) rather than from the VAE's frames")
    parser.add_argument('--frame-goals-hand-box', action='store_true',
                        help="--imagined-goals frames: only the VAE's frames whose hand lies in "
                             'the hand-goal box')
    parser.add_argument('--frame-goals-goal-states', type=int, default=None, metavar='N',
                        help="a simulator diagnostic (with --imagined-goals frames): RIG's "
                             "goals are the frames of N goal states drawn as the oracle's "
                             "practice goals are, not the VAE's frames")
    parser.add_argument('--reward-position-probe', action='store_true',
                        help="a simulator diagnostic: RIG's reward is the distance between "
                             'hand and puck positions read from the latents by a probe fitted '
                             "on the VAE's frames and their true states")
    parser.add_argument('--observe-position-probe', action='store_true',
                        help='a simulator diagnostic (with --imagined-goals frames): those '
                             "positions are RIG's observation and goals too, and its reward "
                             'measures between them')
    parser.add_argument('--updates-per-step', type=int, default=None,
                        help='TD3 updates per stored transition, RIG and the oracle alike '
                             "(default: the pipeline's and RIG's, 4); wall time grows with it")
    parser.add_argument('--batch-size', type=int, default=None,
                        help="TD3's replay batch, RIG and the oracle alike (default: RIG's, "
                             '128); wall time grows with it')
    parser.add_argument('--learning-rate', type=float, default=None,
                        help="TD3's actor and critic learning rate, RIG and the oracle alike "
                             "(default: RIG's, 1e-3)")
    parser.add_argument('--hidden-sizes', type=int, nargs='+', default=None,
                        help="TD3's hidden layer widths, RIG and the oracle alike (default: "
                             "RIG's, 400 300)")
    parser.add_argument('--collect-hold-steps', type=int, default=None,
                        help='steps each random exploration action is held (default: the '
                             "pipeline's, 5)")
    parser.add_argument('--camera-elevation', type=float, default=None,
                        help="the simulator camera's elevation in degrees, RIG's frames only "
                             "(default: the simulator's, -65; flatter sees behind the hand)")
    parser.add_argument('--crop', type=int, nargs=4, default=None,
                        metavar=('TOP', 'LEFT', 'HEIGHT', 'WIDTH'),
                        help="the window of the 84x84 camera frame RIG's VAE sees, resized to "
                             "--image-size (camera_pipeline's crop; default: the whole frame); "
                             '10 3 60 78 keeps the pusher workspace: hand and puck larger')
    parser.add_argument('--hide-arm', action='store_true',
                        help="simulator diagnostic: RIG's frames show the hand but not the "
                             "arm's links, which hide the puck behind the hand")
    parser.add_argument('--collect-images', type=int, default=None,
                        help="exploration frames the VAE trains on and the frames' goals come "
                             "from (default: the pipeline's, 5,000); not RL steps")
    parser.add_argument('--keep-objects', action='store_true',
                        help="exploration's re-sets move the hand only: the puck stays where "
                             'it was pushed, as on a robot (out of reach: back to its start)')
    parser.add_argument('--hand-to-goal-box', action='store_true',
                        help="exploration's re-sets then move the hand to a random point of "
                             'the hand-goal box clear of the puck (a robot knows its hand)')
    parser.add_argument('--aimed-pushes', type=float, default=None,
                        help="share of exploration's held actions replaced by a push aimed at "
                             'the puck, towards a random point of the puck-goal box (the true '
                             "puck's position, or with --push-tracking camera a tracker's)")
    parser.add_argument('--push-tracking', choices=PUSH_TRACKING, default=None,
                        help="where aimed pushes find the puck: 'state' (default, the "
                             "simulator's true position) or 'camera' (a colour tracker on the "
                             'frame, calibrated on 12 frames of the puck at known places: what '
                             'a robot can do)')
    parser.add_argument('--oracle-goals', choices=tuple(ORACLE_GOALS), default=None,
                        help="the oracle's practice and imagined goals: the states random "
                             "exploration saw (RIG's frames' goals in state; with "
                             "--reset-to-goal, that collection's) instead of the goal space; "
                             "'-hand' / '-pucks': only that part, the rest from the goal "
                             "space; '-handbox': the states whose hand lies in the hand-goal box")
    parser.add_argument('--oracle-shared-scale', action='store_true',
                        help="standardise the oracle's state by one spread for every "
                             'coordinate: hand and puck centimetres weigh alike in its reward')
    parser.add_argument('--no-baselines', action='store_true',
                        help='run the RIG variants only, no oracle or random policy (a '
                             'later run over the same folder and seeds adds them)')
    parser.add_argument('--baselines-only', action='store_true',
                        help='run the oracle and random policy only (their runs are shared by '
                             'every VAE setting; RIG runs of the folder are left alone)')
    parser.add_argument('--frames-from', type=pathlib.Path, default=None,
                        help="a benchmark folder whose seeds' frames and VAE the RIG runs "
                             'reuse (same seed and collection, checked; its rig variant where '
                             "the variant's own is absent): only RL runs again")
    parser.add_argument('--continue-from', type=pathlib.Path, default=None,
                        help='a benchmark folder whose finished RIG runs these continue to '
                             '--rl-steps (same settings but the budget, checked; give another '
                             '--out)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs at once, each in its own process (one core each)')
    args = parser.parse_args()
    if args.no_baselines and args.baselines_only:
        parser.error('--no-baselines and --baselines-only exclude each other')
    if args.baselines_only:
        args.variants = []
    if args.frames_from is not None and args.continue_from is not None:
        parser.error('--frames-from and --continue-from exclude each other')
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    if args.vae_steps is not None and args.vae_steps < 1:  # 0 would leave the VAE untrained
        parser.error(f'--vae-steps (vae_steps) must be at least 1, got {args.vae_steps}')
    if args.first_seed < 0 or args.seeds < 1:
        parser.error(f'--first-seed must be >= 0 and --seeds >= 1, got {args.first_seed} and '
                     f'{args.seeds}')
    settings = RunSettings(
        image_size=args.image_size, latent_dim=args.latent_dim,
        imagined_goals=args.imagined_goals, replay_capacity=args.replay_capacity,
        reset_to_goal_probability=args.reset_to_goal,
        fine_tune_vae_every=args.fine_tune_vae_every,
        fine_tune_vae_until=args.fine_tune_vae_until, episode_length=args.episode_length,
        relabel=None if args.relabel is None else tuple(args.relabel), beta=args.beta,
        vae_steps=args.vae_steps,
        updates_per_step=args.updates_per_step, batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        hidden_sizes=None if args.hidden_sizes is None else tuple(args.hidden_sizes),
        frame_goals_from_replay=args.frame_goals_from_replay or None,
        oracle_goals=args.oracle_goals, collect_hold_steps=args.collect_hold_steps,
        collect_images=args.collect_images, camera_elevation=args.camera_elevation,
        hide_arm=args.hide_arm or None, crop=None if args.crop is None else tuple(args.crop),
        keep_objects=args.keep_objects or None,
        hand_to_goal_box=args.hand_to_goal_box or None, aimed_pushes=args.aimed_pushes,
        push_tracking=args.push_tracking,
        frame_goals_hand_box=args.frame_goals_hand_box or None,
        frame_goals_goal_states=args.frame_goals_goal_states,
        oracle_shared_scale=args.oracle_shared_scale or None,
        reward_position_probe=args.reward_position_probe or None,
        observe_position_probe=args.observe_position_probe or None)
    if args.goals is None:
        args.goals = 5 if args.quick else 20
    try:  # the configs check every setting and name the field; refuse before anything runs
        for task in args.tasks:
            pushing_config(task, 'rig', args.first_seed, args.quick, args.rl_steps, args.goals,
                           settings)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(1)  # as bench/learning.py: a busy 2-core machine
    # Other VAE settings are other runs: their own folder (a run refuses another config).
    out = pathlib.Path(args.out) / (('quick' if args.quick else 'full') + settings.tag())
    out.mkdir(parents=True, exist_ok=True)

    figures: dict[str, Any] = {'reset_to_goal_probability': settings.reset_probability(),
                               'run_settings': dataclasses.asdict(settings),
                               'skew_fit': dataclasses.asdict(SKEW_FIT),
                               'goals_per_box': args.goals}
    # The oracle and random policy see no VAE: one set per budget and replay, shared by VAE
    # settings.
    baselines_dir = pathlib.Path(args.out) / (('quick' if args.quick else 'full')
                                              + settings.baselines_tag())
    baselines_dir.mkdir(parents=True, exist_ok=True)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    work: list[Work] = []
    for task in args.tasks:
        for seed in seeds:
            work += [Work(task, variant, seed, pushing_config(
                task, variant, seed, args.quick, args.rl_steps, args.goals, settings),
                out / f'{task}_{variant}_seed{seed}') for variant in args.variants]
            if args.no_baselines:
                continue
            work.append(Work(task, 'baselines', seed, pushing_config(
                task, 'rig', seed, args.quick, args.rl_steps, args.goals, settings),
                baselines_dir / f'{task}_baselines_seed{seed}.json', settings.oracle_goals,
                bool(settings.oracle_shared_scale)))
    source = args.continue_from or args.frames_from
    starts = []  # (source run directory, RIG run started from it)
    for item in work if source is not None else []:
        if item.variant == 'baselines':
            continue
        source_dir = source / item.path.name
        if args.frames_from is not None and not source_dir.exists():
            source_dir = source / f'{item.task}_rig_seed{item.seed}'  # RIG's frames and VAE
        starts.append((source_dir, item))
    try:  # like the configs: every source is checked before anything is copied or run
        for source_dir, item in starts:
            start_from(source_dir, item.path, item.config, args.continue_from is not None,
                       copy=False)
    except ValueError as error:
        parser.error(str(error))
    for source_dir, item in starts:
        copied = start_from(source_dir, item.path, item.config, args.continue_from is not None)
        if copied:
            print(f'{item}: {", ".join(copied)} from {source_dir}', flush=True)
    if args.jobs > 1:  # each in its own process; the figures are read back below
        context = multiprocessing.get_context('spawn')
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            for done in pool.map(run_work, work):
                print(f'== done: {done}', flush=True)
    name = run_name(args.variants, seeds, args.no_baselines, settings)
    for task in args.tasks:
        rig: dict[str, list[dict]] = {variant: [] for variant in args.variants}
        baselines = []
        task_work = [item for item in work if item.task == task]
        for item in task_work:
            print(f'== {item}', flush=True)
            if item.variant == 'baselines':
                baselines.append(run_baselines(item.config, item.path, item.oracle_goals,
                                               item.oracle_shared_scale))
            else:
                rig[item.variant].append(run_rig(item.config, item.path))
        figures.update(summarise(task, rig, baselines, task_work[-1].config,
                                 out / f'{task}_{name}_learning_curve.png'))
    keys = ('pusher_rig_puck_distance_mean', 'pusher_oracle_puck_distance_mean',
            'pusher_rl_steps', 'pusher_seeds', 'multi_pusher_rig_puck_distance_mean',
            'multi_pusher_oracle_puck_distance_mean', 'pusher_skewfit_puck_distance_mean',
            'pusher_skewgoals_puck_distance_mean')
    summary = out / f'figures_{"+".join(args.tasks)}_{name}.json'
    summary.write_text(json.dumps(figures, indent=2))
    print(f'all figures: {summary}')
    print(json.dumps({key: figures.get(key) for key in keys}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
