"""The RIG pipeline in process: collect, pretrain the VAE, practise with imagined goals, evaluate.

Every stage writes its result into a run directory and is skipped when that result is already
there, so an interrupted run resumes where it stopped (RL resumes from its last checkpoint).
The environment is anything with the `GoalEnv` shape below (the simulated Sawyer here).
Practice stores and trains through `core.trainer.RigTrainer`, as the graph's learner does;
evaluations go to metrics.jsonl as `core.evaluation.EvaluationRecord`s.

Options for scenes with objects (the pushers): `collect_reset_to_goal_probability` sets that
share of the collection's episodes to a sampled goal state after the reset (RIG's simulated
VAE data, so the VAE sees the puck everywhere); `skew_fit` (`core.skew_fit`, alpha < 0) draws
the VAE's pretraining (and fine-tuning) frames and the imagined goals by Skew-Fit's weights
instead of uniformly and from the VAE prior.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Any, Callable, Iterator, Optional, Protocol

import numpy as np
import torch
from tqdm import tqdm

from rig_ros.core import checkpoints
from rig_ros.core.actor import GoalPolicy
from rig_ros.core.encoder import LATENT_VARIANCE_KEY, saved_latent_variance
from rig_ros.core.evaluation import (
    append_evaluation, append_row, Evaluation, EvaluationRecord, METRICS_FILE)
from rig_ros.core.files import atomic_write, atomic_write_text, hold_run_directory
from rig_ros.core.goals import check_imagined_goals, ImaginedGoals
from rig_ros.core.noise import ExplorationConfig
from rig_ros.core.preprocessing import CropBox, preprocess, PreprocessConfig
from rig_ros.core.pushes import aimed_push, AimedPush, calibration_states
from rig_ros.core.replay import GoalSampler, RelabelConfig
from rig_ros.core.resets import HAND_DIMS, hand_in_goal_box, hand_to_goal_box, kept_objects
from rig_ros.core.rewards import LatentDistance, PositionProbe, REWARD_KINDS, RewardKind
from rig_ros.core.skew_fit import (
    fit_skewed, SkewedGoalSampler, SkewedVAEFineTuning, SkewFitConfig)
from rig_ros.core.td3 import TD3Config
from rig_ros.core.tracker import PuckTracker
from rig_ros.core.trainer import (
    check_fine_tune_schedule, latent_prior, replay_latent_goals, RigTrainer, VAEFineTuning,
    VAEStage)
from rig_ros.core.vae import (
    AugmentationConfig, ConvVAE, encode_images, latent_variance, VAEConfig, VAETrainer)

FORMAT_VERSION = 1
GOAL_STATE_FRAMES_SEED = 30_000
"""Offset of the goal-state frames' seed (`evaluation_goals` draws from 10,000 + seed)."""


class GoalEnv(Protocol):
    """What the pipeline needs from a simulated (or real) robot."""

    action_dim: int

    def reset(self, seed: int | None = None) -> None: ...

    def step(self, action: np.ndarray) -> None: ...

    def render(self, height: int | None = None, width: int | None = None) -> np.ndarray: ...

    def state_vector(self) -> np.ndarray: ...

    def sample_goal_state(self, rng: np.random.Generator) -> np.ndarray: ...

    def set_state_vector(self, state: np.ndarray) -> None: ...

    def render_goal(self, goal_state: np.ndarray, height: int | None = None,
                    width: int | None = None) -> np.ndarray: ...

    def distances(self, goal_state: np.ndarray) -> dict[str, float]: ...


PUSH_TRACKING = ('state', 'camera')
"""Where exploration's aimed pushes find the puck (`PipelineConfig.collect_push_tracking`)."""


@dataclasses.dataclass
class PipelineConfig:
    """One RIG run: every stage's budget and settings."""

    task: str = 'reacher'
    """Simulated task ('reacher', 'pusher', 'multi_pusher')."""
    seed: int = 0
    """Seeds the scene, the networks, replay sampling, exploration and evaluation goals."""
    raw_height: int = 84
    """Height of the camera frames as the robot delivers them."""
    raw_width: int = 84
    """Width of the camera frames as the robot delivers them."""
    crop: tuple[int, int, int, int] | None = None
    """Crop the camera pipeline applies (top, left, height, width, raw pixels); None: none."""
    sim_camera_elevation_deg: float | None = None
    """Simulator runs only: the fixed camera's elevation, degrees (None: `SawyerSimConfig`'s).
    Whoever builds the simulator reads it; kept here so a run's frames name their camera. A
    flatter camera sees behind the hand, where a steep one has the forearm over the puck."""
    sim_hide_arm: bool = False
    """Simulator diagnostic (`SawyerSimConfig.hide_arm`): frames show the hand, not the arm's
    links, so nothing hides the puck but the hand itself. Not for robots."""
    image_size: int = 48
    """Side of the VAE's square input, 48 or 84."""
    collect_images: int = 5000
    """Stage 1: random exploration images."""
    collect_episode_length: int = 50
    """Stage 1: steps between scene re-sets."""
    collect_hold_steps: int = 5
    """Stage 1: steps each uniform random action is held (longer: straighter sweeps)."""
    collect_keep_objects: bool = False
    """Stage 1: a re-set moves the hand only, the objects stay where exploration left them (as
    on a robot, where nobody puts the puck back); one out of the hand's reach or too close to
    its start goes back to its own start."""
    collect_reset_to_goal_probability: float = 0.0
    """Stage 1: share of episodes set to a sampled goal state after the reset (RIG's recipe)."""
    collect_hand_to_goal_box: bool = False
    """Stage 1: every other re-set then moves the hand to a uniform point of the task's
    hand-goal box clear of the pucks (`hand_to_goal_box`; a robot can: it knows its hand), so
    episodes start with the hand where evaluation's goals put it and the puck wherever it is."""
    collect_aimed_pushes: float = 0.0
    """Stage 1: share of the held actions replaced by a push aimed at a puck, towards a uniform
    point of the puck-goal box (`core.pushes`): a kept puck then shows up in many places."""
    collect_push_tracking: str = 'state'
    """Stage 1: where aimed pushes find the puck: 'state' (the simulator's true position) or
    'camera' (`core.tracker.PuckTracker` on the frame, calibrated on frames of the puck at
    `core.pushes.calibration_states`' places: what a robot can do; one puck only)."""
    vae: VAEConfig = dataclasses.field(default_factory=VAEConfig)
    """Stage 2: the VAE and its training."""
    vae_steps: int = 5000
    """Stage 2: VAE pretraining minibatches."""
    skew_fit: SkewFitConfig = dataclasses.field(default_factory=SkewFitConfig)
    """Stages 2-3: Skew-Fit's skewed VAE frames and imagined goals (alpha 0: off, RIG)."""
    imagined_goals: ImaginedGoals = 'prior'
    """Stage 3: imagined goals from the VAE prior N(0, I) ('prior', RIG) or the encoder means
    of the VAE's frames ('frames', Skew-Fit's source; drawn by skewed weight when skew_fit is
    on, which implies 'frames'). Prior samples can lie far from every frame's latent."""
    frame_goals_from_replay: bool = False
    """Stage 3, imagined_goals 'frames': draw them from the replay's latents (the frames
    practised so far, as the graph's learner relabels and its goal scheduler imagines) rather
    than from the VAE's frames, which stand in until the replay holds a frame. Not with
    Skew-Fit, whose weights are the VAE's frames'."""
    frame_goals_hand_in_goal_box: bool = False
    """Stage 3, imagined_goals 'frames': only the VAE's frames whose hand lay in the task's
    hand-goal box (`hand_in_goal_box`; a robot knows where its hand was). Exploration's hand
    wanders the whole workspace and rewards weigh the hand most, so goals with far hands teach
    placing the hand, not pushing. Not with frames from the replay or a fine-tuned VAE (their
    goals are the replay's frames)."""
    frame_goals_goal_states: int = 0
    """Simulator diagnostic, stage 3, imagined_goals 'frames': the goals are the frames of this
    many states drawn from the task's goal boxes (what the state oracle practises on, rendered;
    other draws than evaluation's), not the VAE's frames; 0: off. Separates what RIG's goals
    cost from what its latent costs. A robot cannot set its scene to a goal: not for robots.
    Not with the hand-box filter, frames from the replay or fine-tuning."""
    td3: TD3Config = dataclasses.field(default_factory=TD3Config)
    """Stage 3: TD3 and its update schedule."""
    exploration: ExplorationConfig = dataclasses.field(default_factory=ExplorationConfig)
    """Stage 3: exploration noise while practising."""
    relabel: RelabelConfig = dataclasses.field(default_factory=RelabelConfig)
    """Stage 3: goal relabelling of sampled transitions."""
    rl_steps: int = 10_000
    """Stage 3: practice steps (environment steps with imagined goals)."""
    episode_length: int = 50
    """Steps of a practice episode and of an evaluation attempt."""
    replay_capacity: int = 20_000
    """Replay size in frames (an episode of T steps takes T + 1)."""
    reward: RewardKind = 'euclidean'
    """Latent reward: 'euclidean' or 'mahalanobis' (the pretrained encoder's variance)."""
    reward_position_probe: bool = False
    """Simulator diagnostic: the Euclidean reward measures the distance between positions
    (hand and pucks, metres) read from the latents by a `PositionProbe` fitted on the VAE's
    frames and their true states, not between the latents. The observation stays the
    latent; only the reward's ruler changes (hand and puck centimetres weigh alike, as in
    the shared-spread oracle's). A robot does not know its puck's position: not for robots.
    Not with fine-tuning (the probe reads the pretrained VAE's latents)."""
    observe_position_probe: bool = False
    """Simulator diagnostic: the policy observes, and is given goals as, the positions that
    probe reads from the latents (the oracle's state read from pixels, in units of the frames'
    spread), and the Euclidean reward measures between them (reward_position_probe's ruler,
    implied). Separates what RIG's latent observation costs from its goals and ruler. Needs
    imagined_goals 'frames' (the prior's draws are latents no frame showed) and the Euclidean
    reward on a frozen VAE; not for robots."""
    fine_tune_vae_every: int = 0
    """Practice steps between VAE fine-tuning rounds on the replay's images; 0: frozen VAE."""
    fine_tune_vae_steps: int = 200
    """Minibatches of one fine-tuning round."""
    fine_tune_vae_until: int = 0
    """Practice steps after which the VAE stays as the last round left it; 0: tuned to the end."""
    checkpoint_every: int = 2500
    """Practice steps between checkpoints (and one at the end)."""
    eval_every: int = 2500
    """Stage 4: practice steps between evaluations on goal images (and at 0 and the end)."""
    eval_goals: int = 20
    """Stage 4: evaluation goals."""
    success_threshold_m: float = 0.05
    """Stage 4: final hand (+ puck) distance counted as a success."""

    def __post_init__(self) -> None:
        """Check the budgets; a bad value names itself."""
        for name in ('raw_height', 'raw_width', 'collect_images', 'collect_episode_length',
                     'collect_hold_steps', 'episode_length', 'replay_capacity', 'eval_goals',
                     'checkpoint_every', 'eval_every'):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f'{name} must be positive, got {getattr(self, name)!r}')
        for name in ('vae_steps', 'rl_steps', 'fine_tune_vae_every', 'fine_tune_vae_steps',
                     'fine_tune_vae_until', 'frame_goals_goal_states'):
            if int(getattr(self, name)) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)!r}')
        if self.sim_camera_elevation_deg is not None and not (
                -90.0 <= self.sim_camera_elevation_deg < 0.0):
            raise ValueError('sim_camera_elevation_deg must be in [-90, 0) or None, got '
                             f'{self.sim_camera_elevation_deg!r}')
        if self.image_size not in (48, 84):
            raise ValueError(f'image_size must be 48 or 84, got {self.image_size!r}')
        if self.crop is not None:  # a crop outside the frame fails here, not at the first frame
            try:
                self.preprocess_config.crop.pixels(int(self.raw_height), int(self.raw_width))
            except (TypeError, ValueError) as error:
                raise ValueError(f'crop {self.crop!r} (top, left, height, width) does not fit '
                                 f'the {self.raw_height}x{self.raw_width} frame: {error}'
                                 ) from None
        for name in ('collect_reset_to_goal_probability', 'collect_aimed_pushes'):
            probability = getattr(self, name)
            if (isinstance(probability, bool) or not isinstance(probability, (int, float))
                    or not 0.0 <= probability <= 1.0):
                raise ValueError(f'{name} must be a number in [0, 1], got {probability!r}')
        if self.collect_push_tracking not in PUSH_TRACKING:
            raise ValueError(f'collect_push_tracking must be one of {PUSH_TRACKING}, got '
                             f'{self.collect_push_tracking!r}')
        check_imagined_goals(self.imagined_goals)
        check_fine_tune_schedule(self.fine_tune_vae_every, self.fine_tune_vae_until)
        if self.skew_fit.enabled:  # Skew-Fit draws its goals from the frames
            self.imagined_goals = 'frames'
        if self.frame_goals_from_replay and (self.imagined_goals != 'frames'
                                             or self.skew_fit.enabled):
            raise ValueError("frame_goals_from_replay needs imagined_goals 'frames' without "
                             f'Skew-Fit, got {self.imagined_goals!r} (skew_fit alpha '
                             f'{self.skew_fit.alpha})')
        if self.frame_goals_hand_in_goal_box and (self.imagined_goals != 'frames'
                                                  or self.frame_goals_from_replay
                                                  or self.fine_tune_vae_every):
            raise ValueError("frame_goals_hand_in_goal_box needs imagined_goals 'frames' from "
                             "the VAE's frames (no frame_goals_from_replay, no fine-tuning), "
                             f'got {self.imagined_goals!r}, frame_goals_from_replay '
                             f'{self.frame_goals_from_replay}, fine_tune_vae_every '
                             f'{self.fine_tune_vae_every}')
        if self.frame_goals_goal_states and (self.imagined_goals != 'frames'
                                             or self.frame_goals_from_replay
                                             or self.frame_goals_hand_in_goal_box
                                             or self.fine_tune_vae_every):
            raise ValueError("frame_goals_goal_states needs imagined_goals 'frames' on a frozen "
                             'VAE, without frame_goals_from_replay or '
                             f'frame_goals_hand_in_goal_box, got {self.imagined_goals!r}, '
                             f'frame_goals_from_replay {self.frame_goals_from_replay}, '
                             f'frame_goals_hand_in_goal_box {self.frame_goals_hand_in_goal_box}, '
                             f'fine_tune_vae_every {self.fine_tune_vae_every}')
        if self.reward not in REWARD_KINDS:
            raise ValueError(f'reward must be one of {REWARD_KINDS}, got {self.reward!r}')
        if self.reward_position_probe and (self.reward != 'euclidean'
                                           or self.fine_tune_vae_every):
            raise ValueError("reward_position_probe needs the 'euclidean' reward on a frozen "
                             f'VAE (no fine-tuning), got reward {self.reward!r}, '
                             f'fine_tune_vae_every {self.fine_tune_vae_every}')
        if self.observe_position_probe and (
                self.reward != 'euclidean' or self.fine_tune_vae_every
                or self.imagined_goals != 'frames' or self.reward_position_probe):
            raise ValueError("observe_position_probe needs the 'euclidean' reward on a frozen "
                             "VAE, imagined_goals 'frames' and no reward_position_probe (it "
                             f'measures in the positions already), got reward {self.reward!r}, '
                             f'fine_tune_vae_every {self.fine_tune_vae_every}, imagined_goals '
                             f'{self.imagined_goals!r}, reward_position_probe '
                             f'{self.reward_position_probe}')
        if self.vae.image_size != self.image_size:
            self.vae = dataclasses.replace(self.vae, image_size=self.image_size)

    def sim_options(self, **options: Any) -> dict[str, Any]:
        """Return `SawyerSimConfig`'s keywords for this run's simulator, `options` added."""
        camera = ({} if self.sim_camera_elevation_deg is None
                  else {'camera_elevation_deg': float(self.sim_camera_elevation_deg)})
        hidden = {'hide_arm': True} if self.sim_hide_arm else {}
        return {'task': self.task, 'seed': self.seed, **camera, **hidden, **options}

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """The camera pipeline's preprocessing for this run."""
        crop = CropBox(*self.crop) if self.crop is not None else None
        return PreprocessConfig(crop=crop, size=self.image_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (nested configs included)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> 'PipelineConfig':
        """Inverse of `to_dict`; also reads the layout of runs before the TD3 config split.

        Those kept the exploration noise in td3 (now `exploration`) and a td3 seed, which the
        run's seed always replaced (now dropped). Runs from before VAE training augmentation
        trained without it.
        """
        values = dict(values)
        td3 = _tuples(values.get('td3', {}))
        moved = {key: td3.pop(key) for key in _EXPLORATION_FIELDS if key in td3}
        td3.pop('seed', None)
        vae = dict(values.get('vae', {}))
        vae.setdefault('augmentation', AugmentationConfig(enabled=False))
        values['vae'] = VAEConfig(**vae)
        values['td3'] = TD3Config(**td3)
        values['exploration'] = ExplorationConfig(**values.get('exploration', moved))
        values['relabel'] = RelabelConfig(**values.get('relabel', {}))
        values['skew_fit'] = SkewFitConfig(**values.get('skew_fit', {}))
        if values.get('crop') is not None:
            values['crop'] = tuple(values['crop'])
        return cls(**values)


_EXPLORATION_FIELDS = tuple(field.name for field in dataclasses.fields(ExplorationConfig))


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    return {key: tuple(value) if isinstance(value, list) else value
            for key, value in values.items()}


class LatentObserver:
    """Raw camera frame -> preprocessed image -> VAE mean: what the graph's nodes do per frame.

    read: maps the encoder means to what the policy observes (None: the means themselves; a
    `PositionProbe` for `observe_position_probe`).
    """

    def __init__(self, vae: ConvVAE, preprocess_config: PreprocessConfig,
                 read: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> None:
        self.vae = vae
        self.preprocess_config = preprocess_config
        self.read = read

    def image(self, raw: np.ndarray) -> np.ndarray:
        """Preprocess one raw RGB frame."""
        return preprocess(raw, self.preprocess_config)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Return the encoder means of uint8 NHWC images (read, if the observer reads them)."""
        mean, _ = encode_images(self.vae, images)
        return mean if self.read is None else self.read(mean)

    def observe(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed image and its latent mean."""
        image = self.image(raw)
        return image, self.encode(image[None])[0]


def _write_json(path: pathlib.Path, values: Any) -> None:
    atomic_write_text(path, json.dumps(values, indent=2, sort_keys=True))


def explore(env: GoalEnv, config: PipelineConfig, progress: bool = True,
            desc: str = 'collect') -> Iterator[int]:
    """Stage 1's random exploration: step `env`, yielding each step's index after it.

    Actions are uniform in [-1, 1] and held `collect_hold_steps` steps, so the hand wanders
    across the workspace instead of jittering around the reset point; the scene is re-set every
    episode. With `collect_reset_to_goal_probability` that share of the resets (drawn from a
    generator of their own, so the actions stay those of the plain recipe) is followed by
    setting the scene to a sampled goal state; with `collect_keep_objects` the other resets put
    the objects back where the last episode left them (`kept_objects`); with
    `collect_hand_to_goal_box` they then move the hand into the hand-goal box (a generator of
    its own too). With `collect_aimed_pushes` that share of the held actions (a generator of
    its own again) is a push aimed at a puck (`core.pushes.aimed_push`) for as many steps,
    found per `collect_push_tracking` (a puck the camera does not see: the random action).
    """
    rng = np.random.default_rng(config.seed)
    probability = config.collect_reset_to_goal_probability
    goal_rng = np.random.default_rng((config.seed, 1))
    hand_rng = np.random.default_rng((config.seed, 2))
    push_rng = np.random.default_rng((config.seed, 3))
    action = np.zeros(env.action_dim)
    push: Optional[AimedPush] = None
    locate = puck_locator(env, config) if config.collect_aimed_pushes > 0 else None
    for index in tqdm(range(config.collect_images), desc=desc, disable=not progress,
                      unit='img'):
        step = index % config.collect_episode_length
        if step == 0:
            # The first episode has nothing to keep.
            objects = (env.state_vector()[HAND_DIMS:]
                       if config.collect_keep_objects and index > 0 else None)
            env.reset(seed=int(rng.integers(2**31)))
            # No draw at probability 0: the plain recipe's images stay bit for bit.
            if probability > 0 and goal_rng.random() < probability:
                env.set_state_vector(env.sample_goal_state(goal_rng))
            elif objects is not None or config.collect_hand_to_goal_box:
                state = env.state_vector()
                if objects is not None:
                    state = kept_objects(state, objects, config.task)
                if config.collect_hand_to_goal_box:
                    state = hand_to_goal_box(state, config.task, hand_rng)
                env.set_state_vector(state)
        held = step % config.collect_hold_steps
        if held == 0:
            action = rng.uniform(-1.0, 1.0, env.action_dim)
            # No draw at share 0: the plain recipe's images stay bit for bit.
            push = None
            if locate is not None and push_rng.random() < config.collect_aimed_pushes:
                pucks = locate()
                if pucks is not None:
                    push = aimed_push(np.concatenate([env.state_vector()[:HAND_DIMS], pucks]),
                                      config.task, push_rng)
        if push is not None:
            action = push.action(env.state_vector()[:HAND_DIMS], held / config.collect_hold_steps)
        env.step(action)
        yield index


def calibration_frames(env: GoalEnv, task: str,
                       frame: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return `frame()` with the puck at each of `calibration_states`' places, and the places.

    The scene is left as the last place set it: reset it after. Used by the pipeline's camera
    push tracking and `rig calibrate-tracker`.
    """
    states = calibration_states(task)
    frames = []
    for state in states:
        env.set_state_vector(state)
        frames.append(frame())
    return np.stack(frames), states[:, HAND_DIMS:HAND_DIMS + 2]


def puck_locator(env: GoalEnv, config: PipelineConfig) -> Callable[[], Optional[np.ndarray]]:
    """Return a function giving the pucks' (x, y) now (None: not seen), per push tracking.

    'camera' calibrates a `PuckTracker` first (`calibration_frames`; reset the scene after).
    """
    if config.collect_push_tracking == 'state':
        return lambda: env.state_vector()[HAND_DIMS:]
    pucks = (len(env.state_vector()) - HAND_DIMS) // 2
    if pucks != 1:
        raise ValueError(f"collect_push_tracking 'camera' tracks one puck; {config.task} has "
                         f'{pucks}')

    def frame() -> np.ndarray:
        return preprocess(env.render(config.raw_height, config.raw_width),
                          config.preprocess_config)

    tracker = PuckTracker()
    tracker.calibrate(*calibration_frames(env, config.task, frame))
    return lambda: tracker.locate(frame())


def collect_images(env: GoalEnv, config: PipelineConfig, progress: bool = True,
                   states: Optional[np.ndarray] = None) -> np.ndarray:
    """Stage 1: the images of random exploration (`explore`), preprocessed.

    `states` (collect_images, state_dim), if given, receives the true state behind each image.
    """
    images = np.empty((config.collect_images, config.image_size, config.image_size, 3), np.uint8)
    for index in explore(env, config, progress):
        images[index] = preprocess(env.render(config.raw_height, config.raw_width),
                                   config.preprocess_config)
        if states is not None:
            states[index] = env.state_vector()
    return images


def exploration_states(env: GoalEnv, config: PipelineConfig,
                       progress: bool = True) -> np.ndarray:
    """Return the true states behind `collect_images`'s images (the same steps, no rendering)."""
    return np.stack([env.state_vector().copy()
                     for _ in explore(env, config, progress, desc='explore (states)')])


def make_vae(config: PipelineConfig) -> ConvVAE:
    """Make this run's VAE, seeded."""
    torch.manual_seed(config.seed)
    return ConvVAE(config.vae)


def make_trainer(config: PipelineConfig, obs_dim: int, action_dim: int,
                 prior_goal_sampler: GoalSampler, *,
                 image_shape: Optional[tuple[int, ...]] = None,
                 latent_variance: Optional[np.ndarray] = None,
                 latent_distance: Optional[LatentDistance] = None,
                 vae_stage: Optional[VAEStage] = None) -> RigTrainer:
    """Make this run's trainer (goals are the size of observations), seeded.

    latent_variance: needed by the 'mahalanobis' reward, unused by the Euclidean one.
    latent_distance: the Euclidean reward's distance between latents (None: straight line).
    """
    return RigTrainer(
        obs_dim=obs_dim, goal_dim=obs_dim, action_dim=action_dim, td3=config.td3,
        relabel=config.relabel, replay_capacity=config.replay_capacity,
        prior_goal_sampler=prior_goal_sampler, reward=config.reward,
        latent_variance=latent_variance if config.reward == 'mahalanobis' else None,
        latent_distance=latent_distance, image_shape=image_shape, seed=config.seed,
        vae_stage=vae_stage)


def sampled_goal_states(env: GoalEnv, count: int, seed: int | tuple[int, ...]) -> np.ndarray:
    """Return `count` goal states drawn from the task's goal distribution with `seed`."""
    rng = np.random.default_rng(seed)
    return np.stack([env.sample_goal_state(rng) for _ in range(count)])


def evaluation_goals(env: GoalEnv, count: int, seed: int) -> np.ndarray:
    """Goal states for evaluation, the same for every method of a seed."""
    return sampled_goal_states(env, count, 10_000 + seed)


def rollout_to_goal(env: GoalEnv, act: Callable[[], np.ndarray], steps: int,
                    goal_state: np.ndarray, reset_seed: int,
                    before_step: Callable[[], None] | None = None) -> dict[str, float]:
    """Reset, run `act` for `steps` steps, and return the final distances to `goal_state`."""
    env.reset(seed=reset_seed)
    for _ in range(steps):
        if before_step is not None:
            before_step()
        env.step(act())
    return env.distances(goal_state)


def evaluate_rig(env: GoalEnv, policy: GoalPolicy, observer: LatentObserver,
                 config: PipelineConfig, goal_states: np.ndarray,
                 frames: list | None = None) -> Evaluation:
    """Reach each goal given as an image (rendered at the goal state), policy without noise.

    frames: if given, gets (goal image, final frame) per goal, raw uint8 RGB (for reports).
    """
    results = []
    for index, goal_state in enumerate(goal_states):
        env.reset(seed=index)
        raw_goal = env.render_goal(goal_state, config.raw_height, config.raw_width)
        goal_image = observer.image(raw_goal)
        goal = observer.encode(goal_image[None])[0]
        latent = {}

        def observe() -> None:
            latent['z'] = observer.observe(env.render(config.raw_height, config.raw_width))[1]

        results.append(rollout_to_goal(
            env, lambda: policy.act(latent['z'], goal, explore=False), config.episode_length,
            goal_state, reset_seed=index, before_step=observe))
        if frames is not None:
            frames.append((raw_goal, env.render(config.raw_height, config.raw_width)))
    return Evaluation.from_results(results, config.success_threshold_m)


def evaluate_random(env: GoalEnv, config: PipelineConfig,
                    goal_states: np.ndarray) -> Evaluation:
    """Evaluate a uniformly random policy on the same goals: the floor."""
    rng = np.random.default_rng(config.seed)
    results = [
        rollout_to_goal(env, lambda: rng.uniform(-1.0, 1.0, env.action_dim),
                        config.episode_length, goal_state, reset_seed=index)
        for index, goal_state in enumerate(goal_states)]
    return Evaluation.from_results(results, config.success_threshold_m)


def practice_loop(env: GoalEnv, trainer: RigTrainer, policy: GoalPolicy,
                  observe: Callable[[], tuple[np.ndarray, np.ndarray | None]],
                  episode_goal: Callable[[], np.ndarray], config: PipelineConfig,
                  rng: np.random.Generator, start_step: int,
                  after_step: Callable[[int], None], metrics_path: pathlib.Path | None = None,
                  progress: bool = True) -> int:
    """Goal-conditioned practice: an episode per goal, the trainer's updates after every step.

    `policy` acts (exploring) with the trainer's actor. `observe` returns the observation (a
    latent, or the true state for the oracle) and the image kept for latent refreshes (or
    None); `episode_goal` draws the goal of an episode (an imagined goal from the VAE prior for
    RIG). Before `learning_starts` the actions are uniform random. After each step's updates
    the trainer's VAE stage runs if it is due, then `after_step(step)`.
    """
    step = start_step
    bar = tqdm(total=config.rl_steps, initial=step, desc='practice', unit='step',
               disable=not progress)
    while step < config.rl_steps:
        env.reset(seed=int(rng.integers(2**31)))
        policy.reset_noise()
        goal = episode_goal()
        observation, image = observe()
        for t in range(config.episode_length):
            if not trainer.learning():
                action = rng.uniform(-1.0, 1.0, env.action_dim)
            else:
                action = policy.act(observation, goal, explore=True)
            env.step(action)
            next_observation, next_image = observe()
            trainer.add_step(observation, action, next_observation, goal, image=image,
                             next_image=next_image, episode_end=t == config.episode_length - 1)
            observation, image = next_observation, next_image
            step += 1
            bar.update(1)
            if trainer.train() and metrics_path is not None and step % 500 == 0:
                append_row(metrics_path, {'stage': 'practice', 'rl_step': step,
                                          **trainer.last_metrics})
            tuned = trainer.run_vae_stage()
            if tuned is not None and metrics_path is not None:  # the fine-tuned VAE's loss
                append_row(metrics_path, {'stage': 'fine_tune', 'rl_step': step, **tuned})
            after_step(step)
            if step >= config.rl_steps:
                break
    bar.close()
    return step


def save_practice(trainer: RigTrainer, td3: TD3Config, rl_path: pathlib.Path,
                  replay_path: pathlib.Path, step: int, metadata: dict[str, Any],
                  extra_modules: Optional[dict[str, Any]] = None) -> None:
    """Checkpoint practice at `step`: the replay, then the networks, optimizers and `metadata`.

    Each file is replaced atomically. `extra_modules` (name -> state dict) travel with the
    networks (a fine-tuned VAE).
    """
    atomic_write(replay_path, lambda stream: np.savez(stream, **trainer.buffer.export()))
    modules, optimizers = trainer.network_state()
    modules.update(extra_modules or {})
    checkpoints.save_checkpoint(
        rl_path, modules, optimizers, dataclasses.asdict(td3),
        {'format_version': FORMAT_VERSION, 'step': step, 'updates': trainer.updates,
         **metadata})


def restore_practice(trainer: RigTrainer, rl_path: pathlib.Path, replay_path: pathlib.Path,
                     extra: tuple[str, ...] = ()
                     ) -> Optional[tuple[int, dict[str, Any], dict[str, Any]]]:
    """Load what `save_practice` wrote into `trainer`; None when nothing was saved.

    Returns (step, metadata, the `extra` modules' state dicts found). An unusable file raises
    (`checkpoints.CheckpointError` for the networks, numpy's error for the replay): a corrupt
    checkpoint is never guessed around.
    """
    if not (rl_path.exists() and replay_path.exists()):
        return None
    saved = checkpoints.load_checkpoint(rl_path)
    found = {name: saved.modules.pop(name) for name in extra if name in saved.modules}
    trainer.load_network_state(saved.modules, saved.optimizers, saved.metadata['updates'])
    step = int(saved.metadata['step'])
    with np.load(replay_path) as data:
        trainer.restore_replay({key: data[key] for key in data.files}, stored=step)
    return step, saved.metadata, found


def saved_form(config: PipelineConfig) -> dict[str, Any]:
    """Return `config` as its config.json holds it (tuples as lists), to compare with one."""
    return json.loads(json.dumps(config.to_dict()))


def check_run_config(run_dir: pathlib.Path, config: PipelineConfig) -> bool:
    """Refuse a run directory whose saved configuration differs from `config`.

    Returns whether `run_dir` holds a configuration (False: none saved yet). Runs of an older
    layout are read through `PipelineConfig.from_dict`, so they compare in the new one.
    """
    path = run_dir / 'config.json'
    if not path.exists():
        return False
    current = saved_form(config)
    try:
        saved = saved_form(PipelineConfig.from_dict(json.loads(path.read_text())))
    except (TypeError, ValueError):
        saved = None
    if saved != current:
        raise ValueError(f'{run_dir} holds a run with a different configuration; '
                         'use another run directory or delete it')
    return True


class RigPipeline:
    """Runs (or resumes) the four stages in a run directory."""

    def __init__(self, env: GoalEnv, config: PipelineConfig, run_dir: str | os.PathLike,
                 progress: bool = True, log: Callable[[str], None] = print) -> None:
        self.env = env
        self.config = config
        self.run_dir = pathlib.Path(run_dir)
        hold_run_directory(self.run_dir)  # a second process on it would overwrite this one's
        self.progress = progress
        self.log = log
        # Wall time per stage over every session of this run (interrupted ones included).
        self.stage_wall_s: dict[str, float] = (
            json.loads(self.wall_path.read_text()) if self.wall_path.exists() else {})
        self._check_config()

    # Paths of the stages' results.
    @property
    def images_path(self) -> pathlib.Path:
        """Collected images."""
        return self.run_dir / 'images.npz'

    @property
    def vae_path(self) -> pathlib.Path:
        """Pretrained VAE checkpoint."""
        return self.run_dir / 'vae.safetensors'

    @property
    def rl_path(self) -> pathlib.Path:
        """Latest RL checkpoint (agent + counters)."""
        return self.run_dir / 'rl.safetensors'

    @property
    def replay_path(self) -> pathlib.Path:
        """Replay buffer saved with the RL checkpoint."""
        return self.run_dir / 'replay.npz'

    @property
    def metrics_path(self) -> pathlib.Path:
        """One JSON line per evaluation and per logging interval (core.evaluation)."""
        return self.run_dir / METRICS_FILE

    def _check_config(self) -> None:
        if not check_run_config(self.run_dir, self.config):
            _write_json(self.run_dir / 'config.json', self.config.to_dict())

    @property
    def wall_path(self) -> pathlib.Path:
        """Wall time per stage, summed over sessions."""
        return self.run_dir / 'wall_s.json'

    def _timed(self, stage: str, work: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        before = self.stage_wall_s.get(stage, 0.0)
        self._stage_clock = (stage, start, before)
        result = work()
        self._record_time()
        self._stage_clock = None
        return result

    def _record_time(self) -> None:
        """Persist the running stage's time so far (called at checkpoints and stage ends)."""
        if getattr(self, '_stage_clock', None) is None:
            return
        stage, start, before = self._stage_clock
        self.stage_wall_s[stage] = before + time.perf_counter() - start
        _write_json(self.wall_path, self.stage_wall_s)

    # Stage 1.
    def images(self) -> np.ndarray:
        """Return the collected images; the first call collects them."""
        if self.images_path.exists():
            with np.load(self.images_path) as data:
                return data['images']
        self.log(f'collecting {self.config.collect_images} exploration images')
        states = np.empty((self.config.collect_images, self.env.state_vector().shape[0]))
        images = self._timed('collect', lambda: collect_images(
            self.env, self.config, self.progress, states))
        atomic_write(self.images_path, lambda stream: np.savez_compressed(
            stream, images=images, states=states))
        return images

    def image_states(self) -> np.ndarray:
        """Return the true states behind the collected images.

        Runs collected before the states were saved replay the exploration (its seeds and
        actions are the run's), which leaves the scene wherever that ends.
        """
        if not self.images_path.exists():
            self.images()
        with np.load(self.images_path) as data:
            if 'states' in data.files:
                return data['states']
        return exploration_states(self.env, self.config, self.progress)

    @property
    def goal_state_frames_path(self) -> pathlib.Path:
        """Rendered goal states (frame_goals_goal_states)."""
        return self.run_dir / 'goal_state_frames.npz'

    def goal_state_frames(self) -> np.ndarray:
        """Return the frames of frame_goals_goal_states goal states; the first call renders them.

        Kept in the run directory: a resumed run practises on the very same frames.
        """
        if self.goal_state_frames_path.exists():
            with np.load(self.goal_state_frames_path) as data:
                return data['images']
        config = self.config
        count = config.frame_goals_goal_states
        self.log(f'imagined goals from the frames of {count} goal states')
        self.env.reset(seed=GOAL_STATE_FRAMES_SEED + config.seed)
        states = sampled_goal_states(self.env, count, GOAL_STATE_FRAMES_SEED + config.seed)
        images = np.stack([
            preprocess(self.env.render_goal(state, config.raw_height, config.raw_width),
                       config.preprocess_config)
            for state in tqdm(states, desc='goal frames', disable=not self.progress,
                              unit='img')])
        atomic_write(self.goal_state_frames_path, lambda stream: np.savez_compressed(
            stream, images=images, states=states))
        return images

    def goal_frames(self) -> np.ndarray:
        """Return the frames imagined goals are drawn from (imagined_goals 'frames')."""
        if self.config.frame_goals_goal_states:
            return self.goal_state_frames()
        images = self.images()
        if not self.config.frame_goals_hand_in_goal_box:
            return images
        keep = hand_in_goal_box(self.image_states(), self.config.task)
        if not keep.any():
            raise ValueError(f'no exploration frame has the hand in the {self.config.task} '
                             'hand-goal box: collect more frames or turn '
                             'frame_goals_hand_in_goal_box off')
        self.log(f'imagined goals from the {int(keep.sum())} of {len(images)} frames whose '
                 'hand lies in the hand-goal box')
        return images[keep]

    # Stage 2.
    def vae(self) -> ConvVAE:
        """Return the pretrained VAE (training it on first use)."""
        vae = make_vae(self.config)
        if self.vae_path.exists():
            saved = checkpoints.load_checkpoint(self.vae_path)
            vae.load_state_dict(saved.modules['vae'])
            vae.eval()
            return vae
        images = self.images()
        self.log(f'pretraining the VAE for {self.config.vae_steps} steps')
        trainer = VAETrainer(vae, self.config.vae)
        if self.config.skew_fit.skews_vae:
            history = self._timed('pretrain', lambda: fit_skewed(
                trainer, images, self.config.vae_steps, self.config.skew_fit,
                seed=self.config.seed, progress=self.progress))
        else:  # fit's own seed (0) for every run seed, as runs before skewing trained
            history = self._timed('pretrain', lambda: trainer.fit(
                images, self.config.vae_steps, progress=self.progress))
        if history:
            append_row(self.metrics_path, {'stage': 'pretrain', **history[-1]})
        vae.eval()
        # The encoder's variance on these images: the Mahalanobis reward's metric, in graph
        # sessions too (the learner reads it from this file).
        checkpoints.save_checkpoint(
            self.vae_path, {'vae': vae.state_dict()}, {}, dataclasses.asdict(self.config.vae),
            {'format_version': FORMAT_VERSION, 'steps': self.config.vae_steps,
             LATENT_VARIANCE_KEY: latent_variance(vae, images).tolist()})
        return vae

    # Stage 3 (+ periodic stage 4).
    def practise(self) -> tuple[RigTrainer, LatentObserver, list[dict[str, Any]]]:
        """RL with imagined goals, resuming from the last checkpoint."""
        config, env = self.config, self.env
        vae = self._vae = self.vae()
        probe = (self._position_probe(vae)
                 if config.reward_position_probe or config.observe_position_probe else None)
        read = probe if config.observe_position_probe else None
        observer = LatentObserver(vae, config.preprocess_config, read)
        # What the policy observes: the latent, or the positions read from it.
        observation_dim = config.vae.latent_dim if read is None else read.weights.shape[1]
        rng = np.random.default_rng(config.seed + 1)
        skew = config.skew_fit
        # Imagined goals: the VAE prior (RIG), or the frames' latents (skewed by Skew-Fit).
        frame_goals = (SkewedGoalSampler(skew, rng, seed=config.seed)
                       if config.imagined_goals == 'frames' else None)
        prior = (frame_goals if frame_goals is not None
                 else latent_prior(rng, config.vae.latent_dim))
        if config.frame_goals_from_replay:  # the trainer is made below; read at each draw
            prior = replay_latent_goals(lambda: trainer.buffer, prior, rng)
        fine_tuning: Optional[VAEStage] = None
        # Goals drawn from the replay need no refit: its refresh re-encodes what they read.
        if (config.fine_tune_vae_every and frame_goals is not None
                and not config.frame_goals_from_replay):
            fine_tuning = SkewedVAEFineTuning(
                vae, config.vae, config.fine_tune_vae_every, config.fine_tune_vae_steps, skew,
                frame_goals, seed=config.seed, until=config.fine_tune_vae_until)
        elif config.fine_tune_vae_every:
            fine_tuning = VAEFineTuning(vae, config.vae, config.fine_tune_vae_every,
                                        config.fine_tune_vae_steps, config.fine_tune_vae_until)
        trainer = make_trainer(
            config, observation_dim, env.action_dim, prior,
            image_shape=(config.image_size, config.image_size, 3),
            latent_variance=self._latent_variance(vae) if config.reward == 'mahalanobis'
            else None, latent_distance=probe.distance if config.reward_position_probe else None,
            vae_stage=fine_tuning)
        policy = trainer.acting_policy(config.exploration)
        step = 0
        curve: list[dict[str, Any]] = []
        restored = restore_practice(trainer, self.rl_path, self.replay_path, extra=('vae',))
        if restored is not None:
            step, metadata, extra = restored
            if 'vae' in extra:  # fine-tuned during practice: the replay's latents match it
                vae.load_state_dict(extra['vae'])
                vae.eval()
            curve = list(metadata.get('curve', []))
            self.log(f'resuming practice at step {step}')
        if frame_goals is not None:
            # A fine-tuned VAE's goals come from the replay's frames, as its last round left them.
            tuned = fine_tuning is not None and step >= config.fine_tune_vae_every
            frame_goals.fit(vae, trainer.buffer.images() if tuned else self.goal_frames(),
                            read=read)
        goal_states = evaluation_goals(env, config.eval_goals, config.seed)

        def evaluate(at_step: int) -> None:
            frames: list = []
            result = evaluate_rig(env, policy, observer, config, goal_states, frames)
            # The latest evaluation's goal images and final frames, for `rig report`.
            atomic_write(self.run_dir / 'eval_frames.npz', lambda stream: np.savez_compressed(
                stream, goals=np.stack([g for g, _ in frames]),
                finals=np.stack([f for _, f in frames]), rl_step=at_step))
            record = EvaluationRecord.of(result, rl_step=at_step,
                                         env_steps_total=at_step + config.collect_images)
            curve.append(record.to_row())
            append_evaluation(self.metrics_path, record)
            puck = record.rig_final_puck_distance_median
            self.log(f'step {at_step}: success {record.rig_success_rate:.2f}, median hand '
                     f'distance {record.rig_final_hand_distance_median * 100:.1f} cm'
                     + ('' if puck is None else f', median puck distance {puck * 100:.1f} cm'))

        if step == 0 and not curve:
            evaluate(0)

        def after_step(at_step: int) -> None:
            if at_step % config.eval_every == 0 or at_step == config.rl_steps:
                evaluate(at_step)
            if at_step % config.checkpoint_every == 0 or at_step == config.rl_steps:
                self._save_rl(trainer, at_step, curve)

        def observe() -> tuple[np.ndarray, np.ndarray]:
            image, latent = observer.observe(env.render(config.raw_height, config.raw_width))
            return latent, image

        self._timed('practice', lambda: practice_loop(
            env, trainer, policy, observe, lambda: prior(1)[0], config, rng, step, after_step,
            self.metrics_path, self.progress))
        return trainer, observer, curve

    def _latent_variance(self, vae: ConvVAE) -> np.ndarray:
        """Return the pretrained encoder's variance per latent axis (the Mahalanobis metric).

        Saved with the VAE; a VAE checkpoint from before that is measured on the images.
        """
        saved = checkpoints.load_checkpoint(self.vae_path)
        variance = saved_latent_variance(saved.metadata, self.config.vae.latent_dim)
        return variance if variance is not None else latent_variance(vae, self.images())

    def _position_probe(self, vae: ConvVAE) -> PositionProbe:
        """Fit the probe from the VAE's latents to positions on its frames and their states.

        Frames and VAE are fixed for a run, so a resumed run fits the same probe again.
        """
        latents = LatentObserver(vae, self.config.preprocess_config).encode(self.images())
        probe = PositionProbe.fit(latents, self.image_states(), seed=self.config.seed)
        use = 'observation' if self.config.observe_position_probe else 'reward'
        self.log(f'{use}: positions read from the latent, held-out median error '
                 + ', '.join(f'{100 * error:.2f}' for error in probe.holdout_error_m) + ' cm')
        return probe

    def _save_rl(self, trainer: RigTrainer, step: int, curve: list[dict[str, Any]]) -> None:
        extra = {'vae': self._vae.state_dict()} if self.config.fine_tune_vae_every else {}
        save_practice(trainer, self.config.td3, self.rl_path, self.replay_path, step,
                      {'curve': curve}, extra)
        self._record_time()

    def run(self) -> dict[str, Any]:
        """All stages; returns the final figures (also written to `result.json`)."""
        start = time.perf_counter()
        self.images()
        self.vae()
        _, _, curve = self.practise()
        result = {'task': self.config.task, 'seed': self.config.seed, 'curve': curve,
                  'stage_wall_s': self.stage_wall_s, 'wall_s': sum(self.stage_wall_s.values()),
                  'session_wall_s': time.perf_counter() - start, **curve[-1]}
        _write_json(self.run_dir / 'result.json', result)
        return result
