"""The fleet's learner without ROS: ingest transitions, train TD3, version weights, checkpoint.

Transitions arrive per robot, interleaved. Each robot's open episode is kept aside until it
ends and is then added whole to one `GoalReplayBuffer` (which writes one episode at a time).
Ingestion checks every transition and says what it did with it:
- 'invalid': wrong sizes or non-finite values; dropped.
- 'duplicate': a step already received (or after the episode's end); dropped.
- 'out_of_order': an older episode than the robot's current one; dropped. An older episode id
  at step 0 is taken as the robot's restart ('restart'), not as disorder.
- 'gap': steps are missing (a lost message, or an episode joined late): the part before the
  gap is stored as a truncated episode and a new part starts here. A robot's first transition
  since the learner started is no gap, wherever in an episode it is (the robot practised
  before the learner listened, or while it restarted). 'discontinuity': the
  observation is not the previous step's next observation (e.g. new encoder weights): the
  same split. Both transitions are kept.
Truncated parts are valid data: time limits are never terminations, targets bootstrap.
A host may pass `ingest` a `check` run in the same hold of the lock before any of this (the
VAE version guard of `core.practice_run`): what it returns ('mixed', 'stale', 'ahead') is
counted and the transition dropped.

With `keep_images` (the replay keeps frames for VAE fine-tuning) a transition must carry its
frames (`image`, `next_image`); they are stored at the VAE's input size
(`core.vae_training.vae_input`) with the episode.

Storage and training are `core.trainer.RigTrainer`'s, as in `core.pipeline`: once
`td3.learning_starts` transitions are stored, every stored transition owes
`td3.updates_per_step` updates, `train()` pays what is owed; the reward is the Euclidean or
(`reward: mahalanobis`) the Mahalanobis latent distance, with the variance saved in the VAE
checkpoint practised with (`vae_checkpoint`'s, or the run's own pretrained one, given by
`core.practice_run` when it loads it). Every `broadcast_every` updates the actor is due for
broadcast (a new version).

Durability: with `record_episodes(run_dir)` every part stored in the replay buffer is also
written at once to `run_dir/episodes/<sequence>.npz` (atomically, `core.files`; with its
frames when the replay keeps images), so a learner killed with SIGKILL loses at most the
robots' unfinished episodes.
`save` records in the replay file the last sequence number it holds and then deletes the
files it covers; `resume` loads the checkpoint (if any), the replay, then the newer episode
files in order. An unreadable episode file is renamed `*.corrupt` and reported in
`skipped_files`.

Checkpoints are due every `checkpoint_every` updates and, with new updates, every
`checkpoint_period_s` seconds (`checkpoint_due`, on the injected clock), so a crash costs at
most that much training.

Threads: `ingest` and `status` may be called from any thread; `train`, `policy_weights`,
`save` and `resume` from one (the training worker), or while it is stopped. `exclusive()`
holds the ingestion lock for a host that changes the replay itself (seeding, re-encoding).

`LearnerConfig` also holds the run's lifecycle settings (explore, pretrain, fine-tune), which
`core.practice_run.PracticeRun` reads; the `Learner` itself ignores them.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
from dataclasses import dataclass, field
import json
import os
import pathlib
import threading
import time
from typing import Any, Callable, Optional
import zipfile

import numpy as np

from rig_ros.core import checkpoints
from rig_ros.core.actor import Actor
from rig_ros.core.encoder import (
    LATENT_VARIANCE_KEY, resolve_checkpoint as resolve_vae_checkpoint, saved_latent_variance,
    vae_config_from_dict)
from rig_ros.core.files import atomic_write
from rig_ros.core.goals import check_frames_option, check_imagined_goals, ImaginedGoals
from rig_ros.core.hands import hand_or_unknown, HAND_SIZE, HandBox
from rig_ros.core.policy_runtime import encode_policy_weights, TransitionRecord
from rig_ros.core.replay import GoalReplayBuffer, GoalSampler, RelabelConfig
from rig_ros.core.rewards import REWARD_KINDS, RewardKind
from rig_ros.core.skew_fit import skewed_replay_latent_goals, SkewFitConfig
from rig_ros.core.td3 import GoalConditionedTD3, TD3Config
from rig_ros.core.trainer import (
    check_fine_tune_schedule, latent_prior, replay_latent_goals, RigTrainer)
from rig_ros.core.vae import VAEConfig
from rig_ros.core.vae_training import vae_input
from rig_ros.interfaces.names import VAE_MODEL

FORMAT_VERSION = 1
CHECKPOINT_FILE = 'learner.safetensors'
REPLAY_FILE = 'learner_replay.npz'
EPISODES_DIR = 'episodes'  # one .npz per part stored in the replay buffer, until checkpointed
_SEQUENCE_KEY = 'learner_episode_sequence'  # in the replay file: last episode file it holds
_EPISODE_KEYS = ('observation', 'action', 'next_observation', 'goal')
PIPELINE_CHECKPOINT_FILE = 'rl.safetensors'  # core.pipeline's RL checkpoint, servable too
_IMAGES_KEY = 'images'  # in an episode file of a replay keeping images: [T + 1, S, S, 3]
_HANDS_KEY = 'hands'  # in an episode file: the hand at each frame [T + 1, 3], NaN: unknown
REJECTIONS = ('invalid', 'duplicate', 'out_of_order')
VERSION_REJECTIONS = ('mixed', 'stale', 'ahead')  # core.latent_versions.LatentVersions.check
SPLITS = ('gap', 'discontinuity', 'restart')


def default_run_dir() -> str:
    """Return `$ROS_HOME/rig_ros/practice` (ROS_HOME defaults to ~/.ros), absolute."""
    ros_home = os.environ.get('ROS_HOME') or os.path.join('~', '.ros')
    return str(pathlib.Path(ros_home, 'rig_ros', 'practice').expanduser().absolute())


@dataclass(frozen=True)
class LearnerVAEConfig(VAEConfig):
    """The learner's VAE: `VAEConfig` with 48x48 inputs (the pipeline's; RIG's size)."""

    image_size: int = 48


@dataclass
class LearnerConfig:
    """The fleet's learner (the learner node's parameters)."""

    task: str = 'reacher'
    """The task trained (checked when resuming a run directory)."""
    train: bool = True
    """Train on transitions; false: only serve the weights of `checkpoint`."""
    latent_dim: int = 4
    """Size of latents and goals (the VAE's latent size; the prior is N(0, I))."""
    action_dim: int = 2
    """Size of actions."""
    replay_capacity: int = 100_000
    """Replay buffer size in frames (an episode of T steps takes T + 1)."""
    reward: RewardKind = 'euclidean'
    """Latent reward: 'euclidean', or 'mahalanobis' with the variance saved with the VAE
    practised with (the run's own, else vae_checkpoint's)."""
    broadcast_every: int = 200
    """Updates between policy weight broadcasts."""
    checkpoint_every: int = 5000
    """Updates between checkpoints (0: none by count; checkpoint_period_s and shutdown)."""
    checkpoint_period_s: float = 60.0
    """Seconds between checkpoints when there are new updates, on top of checkpoint_every:
    a crash costs at most this much training (0: none by time)."""
    run_dir: str = field(default_factory=default_run_dir)
    """The run directory: stage, frames, VAE, checkpoints and episodes go here and are resumed
    from here. Default `$ROS_HOME/rig_ros/practice` (ROS_HOME defaults to ~/.ros); a relative
    path is taken from the working directory. Empty: none (then only a run with
    vae_checkpoint can train, and nothing survives a restart)."""
    checkpoint: str = ''
    """Run directory or checkpoint file whose weights to serve when train is false."""
    vae_checkpoint: str = ''
    """VAE checkpoint file or run directory (vae.safetensors) to practise with at once: no
    explore and pretrain stages, broadcast as model 'vae' for encoders and goal schedulers
    without their own. Empty: the run explores and pretrains its own VAE in run_dir."""
    explore_frames: int = 5000
    """Exploration frames to keep before pretraining the VAE."""
    vae_steps: int = 5000
    """VAE pretraining minibatches."""
    vae: LearnerVAEConfig = field(default_factory=LearnerVAEConfig)
    """The VAE the run pretrains and fine-tunes (image_size 48 as the pipeline; latent_dim
    must equal the learner's; training-image augmentation per vae.augmentation, on)."""
    vae_checkpoint_every: int = 500
    """VAE pretraining steps between checkpoints (a kill loses at most this many)."""
    frame_chunk_frames: int = 500
    """Exploration frames per chunk file (a kill loses fewer than this many)."""
    frame_flush_period_s: float = 5.0
    """Seconds a kept exploration frame may wait before it is written (0: full chunks only)."""
    reconstruction_period_s: float = 10.0
    """Seconds between reconstructions published while pretraining (0: none)."""
    fine_tune_vae_every: int = 0
    """Stored transitions between VAE fine-tuning rounds in practice (0: off); on, the replay
    keeps every frame at the VAE's input size."""
    fine_tune_vae_steps: int = 200
    """VAE minibatches per fine-tuning round."""
    fine_tune_vae_until: int = 0
    """Stored transitions after which no round runs (the VAE stays as the last one left it);
    0: rounds for the whole run."""
    seed: int = 0
    """Seeds networks, target noise, replay sampling and imagined goals."""
    device: str = 'cpu'
    """Torch device of the networks ('cpu', 'cuda')."""
    num_threads: int = 1
    """Torch CPU threads (0: torch's default)."""
    status_period_s: float = 5.0
    """Seconds between status logs and rig/learner_status messages."""
    tensorboard: bool = True
    """Write TensorBoard scalars (losses, Q, goal distances, rates) to run_dir/tensorboard."""
    td3: TD3Config = field(default_factory=TD3Config)
    """TD3 and its update schedule."""
    relabel: RelabelConfig = field(default_factory=RelabelConfig)
    """Goal relabelling of sampled transitions."""
    imagined_goals: ImaginedGoals = 'prior'
    """Relabelling's imagined goals: z ~ N(0, I) ('prior', RIG) or the latent of a frame in
    the replay ('frames', Skew-Fit's source unskewed; the prior while the replay is empty).
    Set the goal schedulers' imagined_goals alike."""
    frame_goals_hand_box: Optional[HandBox] = None
    """'frames': relabelling's imagined goals only from replay frames taken with the hand in
    this box (x, y metres; the hands the policies send with their transitions); None: every
    frame. Set the goal schedulers' frame_goals_hand_box alike."""
    skew_fit: SkewFitConfig = field(default_factory=SkewFitConfig)
    """Skew-Fit (alpha < 0; 0: off, RIG): VAE pretraining and fine-tuning minibatches drawn by
    skewed weight, and relabelling's imagined goals ('frames' only) drawn from the replay's
    latents by skewed 'latent_kde' weight. Set the goal schedulers' skew_alpha alike."""

    def __post_init__(self) -> None:
        """Check the values; an error names the field."""
        for name in ('latent_dim', 'action_dim', 'broadcast_every', 'status_period_s',
                     'explore_frames', 'vae_steps', 'frame_chunk_frames',
                     'fine_tune_vae_steps'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)!r}')
        for name in ('checkpoint_every', 'checkpoint_period_s', 'num_threads',
                     'vae_checkpoint_every', 'frame_flush_period_s', 'reconstruction_period_s',
                     'fine_tune_vae_every', 'fine_tune_vae_until'):
            if not getattr(self, name) >= 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)!r}')
        if self.replay_capacity < 2:
            raise ValueError(f'replay_capacity must be >= 2, got {self.replay_capacity!r}')
        if self.reward not in REWARD_KINDS:
            raise ValueError(f'reward must be one of {REWARD_KINDS}, got {self.reward!r}')
        check_imagined_goals(self.imagined_goals)
        check_frames_option('frame_goals_hand_box', self.frame_goals_hand_box is not None,
                            self.imagined_goals)
        check_frames_option('skew_fit.alpha', self.skew_fit.enabled, self.imagined_goals)
        check_fine_tune_schedule(self.fine_tune_vae_every, self.fine_tune_vae_until)
        if self.vae.latent_dim != self.latent_dim:
            raise ValueError(f'vae.latent_dim ({self.vae.latent_dim}) must equal latent_dim '
                             f'({self.latent_dim})')
        if self.run_dir:
            self.run_dir = str(pathlib.Path(self.run_dir).expanduser().absolute())

    @property
    def keep_images(self) -> bool:
        """Whether the replay keeps frames (VAE fine-tuning is on)."""
        return self.train and self.fine_tune_vae_every > 0

    @property
    def image_shape(self) -> Optional[tuple[int, int, int]]:
        """Shape of the replay's frames (the VAE's input), None when it keeps none."""
        size = self.vae.image_size
        return (size, size, 3) if self.keep_images else None


@dataclass
class _Episode:
    """A robot's current episode: the part not yet in the replay buffer."""

    episode_id: int
    next_step: int
    steps: list[TransitionRecord] = field(default_factory=list)
    ended: bool = False
    robot_id: str = ''


def resolve_checkpoint(path: str | os.PathLike) -> pathlib.Path:
    """Return the checkpoint file of a run directory (learner's, else pipeline's) or a file."""
    path = pathlib.Path(path)
    if path.is_dir():
        for name in (CHECKPOINT_FILE, PIPELINE_CHECKPOINT_FILE):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f'{path} holds no {CHECKPOINT_FILE} or '
                                f'{PIPELINE_CHECKPOINT_FILE}')
    if not path.is_file():
        raise FileNotFoundError(f'no checkpoint at {path}')
    return path


def load_vae_weights(path: str | os.PathLike, latent_dim: int) -> tuple[int, str, bytes]:
    """Return (version, config JSON, safetensors) of a VAE checkpoint for a Weights message.

    Raises ValueError for an unreadable checkpoint or one whose latent size is not latent_dim.
    """
    file, saved = _read_vae_checkpoint(path)
    if VAE_MODEL not in saved.modules:
        raise ValueError(f'{file} has no {VAE_MODEL!r} module')
    config = dataclasses.asdict(vae_config_from_dict(saved.config))
    if config['latent_dim'] != latent_dim:
        raise ValueError(f'the VAE of {file} has {config["latent_dim"]} latents, the learner '
                         f'latent_dim {latent_dim}')
    version = saved.metadata.get('version', 1)
    version = version if isinstance(version, int) and version > 0 else 1
    return version, json.dumps(config), checkpoints.serialize_state(
        saved.modules[VAE_MODEL], config)


def load_latent_variance(path: str | os.PathLike, latent_dim: int) -> np.ndarray:
    """Return the latent variance a VAE checkpoint holds (the Mahalanobis reward's metric).

    The pipeline's VAE pretraining saves it. Raises ValueError for an unreadable checkpoint or
    one without it.
    """
    file, saved = _read_vae_checkpoint(path)
    variance = saved_latent_variance(saved.metadata, latent_dim)
    if variance is None:
        raise ValueError(f'{file} holds no {LATENT_VARIANCE_KEY!r} (the pipeline saves it with '
                         "the VAE it pretrains): the 'mahalanobis' reward needs it")
    return variance


def _read_vae_checkpoint(path: str | os.PathLike) -> tuple[pathlib.Path, checkpoints.Checkpoint]:
    file = resolve_vae_checkpoint(path)
    try:
        return file, checkpoints.load_checkpoint(file)
    except OSError as error:
        raise ValueError(f'cannot read VAE checkpoint {str(file)!r}: {error}') from None


class Learner:
    """Ingestion, the trainer and the counters of the fleet's learner (see the module doc).

    Raises ValueError when the 'mahalanobis' reward finds no latent variance in
    vae_checkpoint (training only).
    """

    def __init__(self, config: LearnerConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._clock = clock  # seconds, for checkpoint_period_s
        dim = config.latent_dim
        mahalanobis = config.train and config.reward == 'mahalanobis'
        if mahalanobis and not (config.vae_checkpoint or config.run_dir):
            raise ValueError("the 'mahalanobis' reward needs a VAE's variance: set "
                             'vae_checkpoint, or run_dir (the run pretrains its own VAE)')
        self.trainer = RigTrainer(
            obs_dim=dim, goal_dim=dim, action_dim=config.action_dim, td3=config.td3,
            relabel=config.relabel, replay_capacity=config.replay_capacity,
            prior_goal_sampler=self._imagined_goal_sampler(),
            reward=config.reward if config.train else 'euclidean',
            latent_variance=(load_latent_variance(config.vae_checkpoint, dim)
                             if mahalanobis and config.vae_checkpoint else None),
            image_shape=config.image_shape, seed=config.seed, device=config.device)
        self.served_actor: Optional[Actor] = None  # load_actor()'s, served instead of training
        self._episodes: dict[str, _Episode] = {}
        # 'seeded': transitions put into the replay by the host, not received (the encoded
        # exploration); stored = seeded + what ingestion stored.
        self._counts = {'received': 0, 'seeded': 0,
                        **dict.fromkeys(REJECTIONS + VERSION_REJECTIONS + SPLITS, 0)}
        # Per robot, since this process started: {'received': n, 'stored': n}.
        self.robot_counts: dict[str, dict[str, int]] = {}
        self.weights_version = 0
        self._broadcast_at = 0  # updates at the last broadcast
        self._checkpoint_at = 0  # updates at the last checkpoint
        self._checkpoint_time = clock()  # of the last checkpoint (or the start)
        self._episode_dir: Optional[pathlib.Path] = None
        self._sequence = 0  # of the last episode file written (or resumed)
        self.skipped_files: list[str] = []  # unreadable episode files met by resume()
        # Final latent distance to the rollout goal of each finished part (a reader pops).
        self.goal_distances: collections.deque = collections.deque(maxlen=1000)

    def _imagined_goal_sampler(self) -> GoalSampler:
        """Relabelling's imagined goals per `imagined_goals` (reads the replay when drawing)."""
        rng = np.random.default_rng(self.config.seed + 1)
        prior = latent_prior(rng, self.config.latent_dim)
        if self.config.imagined_goals == 'prior':
            return prior
        box = self.config.frame_goals_hand_box
        if self.config.skew_fit.enabled:
            return skewed_replay_latent_goals(lambda: self.trainer.buffer, prior, rng,
                                              self.config.skew_fit, box)
        return replay_latent_goals(lambda: self.trainer.buffer, prior, rng, box)

    @property
    def agent(self) -> GoalConditionedTD3:
        """The trainer's TD3 agent."""
        return self.trainer.agent

    @property
    def buffer(self) -> GoalReplayBuffer:
        """The trainer's replay buffer."""
        return self.trainer.buffer

    @property
    def counts(self) -> dict[str, int]:
        """Transitions received, stored (the trainer's count), rejected and split, by kind."""
        return {**self._counts, 'stored': self.trainer.stored}

    @property
    def last_metrics(self) -> dict[str, float]:
        """Metrics of the latest TD3 update."""
        return self.trainer.last_metrics

    # Ingestion (any thread).

    def ingest(self, robot_id: str, record: TransitionRecord,
               check: Optional[Callable[[TransitionRecord], str]] = None) -> str:
        """Check and keep one transition; return 'stored', 'pending' or the problem.

        `check(record)`, run holding the lock first, returns '' or a refusal (counted).
        """
        with self._lock:
            self._counts['received'] += 1
            self._robot_count(robot_id)['received'] += 1
            refusal = check(record) if check is not None else ''
            if refusal:
                self._counts[refusal] = self._counts.get(refusal, 0) + 1
                return refusal
            verdict = self._ingest(robot_id, record)
            if verdict in self._counts:
                self._counts[verdict] += 1
            if verdict in REJECTIONS:
                return verdict
            episode = self._episodes[robot_id]
            if record.episode_end:
                self._flush(episode)
                episode.ended = True
                return 'stored'
            return verdict if verdict in SPLITS else 'pending'

    def _ingest(self, robot_id: str, record: TransitionRecord) -> str:
        if self.problem(record):
            return 'invalid'
        episode = self._episodes.get(robot_id)
        verdict = 'pending'
        if episode is None or record.episode_id != episode.episode_id:
            if episode is not None and record.episode_id < episode.episode_id:
                if record.step_index != 0:
                    return 'out_of_order'
                verdict = 'restart'
            elif episode is not None and record.step_index != 0:
                verdict = 'gap'  # the episode's first steps never arrived
            if episode is not None:
                self._flush(episode)
            episode = self._episodes[robot_id] = _Episode(record.episode_id, record.step_index,
                                                          robot_id=robot_id)
        elif episode.ended or record.step_index < episode.next_step:
            return 'duplicate'
        elif record.step_index > episode.next_step:
            verdict = 'gap'
            self._flush(episode)
        elif episode.steps and not np.allclose(record.observation,
                                               episode.steps[-1].next_observation,
                                               rtol=1e-5, atol=1e-6):
            verdict = 'discontinuity'
            self._flush(episode)
        episode.steps.append(record)
        episode.next_step = record.step_index + 1
        return verdict

    def problem(self, record: TransitionRecord) -> str:
        """Return what makes a transition 'invalid' (wrong sizes, non-finite values), or ''."""
        config = self.config
        for name in _EPISODE_KEYS:
            array = getattr(record, name)
            size = config.action_dim if name == 'action' else config.latent_dim
            if array.shape != (size,):
                return f'{name} has {array.size} values, expected {size}'
            if not np.isfinite(array).all():
                return (f'{name} holds NaN or infinite values: '
                        f'{np.array2string(array, precision=3)}')
        if config.keep_images:
            for name in ('image', 'next_image'):
                image = getattr(record, name)
                if image is None or image.dtype != np.uint8 or image.ndim != 3 or (
                        image.shape[2] != 3):
                    got = 'none' if image is None else f'{image.dtype} {image.shape}'
                    return f'{name} must be a uint8 HxWx3 frame (the replay keeps frames), ' \
                        f'got {got}'
        return ''

    def _flush(self, episode: _Episode) -> None:
        """Move an episode's kept steps into the replay buffer as one (maybe truncated) episode."""
        if not episode.steps:
            return
        arrays = {key: np.stack([getattr(record, key) for record in episode.steps])
                  for key in _EPISODE_KEYS}
        if self.config.keep_images:
            frames = [episode.steps[0].image] + [record.next_image for record in episode.steps]
            if len({frame.shape for frame in frames}) > 1:  # resized one by one if sizes vary
                frames = [vae_input(frame[None], self.config.vae.image_size)[0]
                          for frame in frames]
            arrays[_IMAGES_KEY] = vae_input(np.stack(frames), self.config.vae.image_size)
        arrays[_HANDS_KEY] = np.stack([hand_or_unknown(episode.steps[0].hand)] + [
            hand_or_unknown(record.next_hand) for record in episode.steps])
        if self._episode_dir is not None:
            self._write_episode(episode, arrays)
        self._store(arrays)
        last = episode.steps[-1]
        self.goal_distances.append(float(np.linalg.norm(last.next_observation - last.goal)))
        self._robot_count(episode.robot_id)['stored'] += len(episode.steps)
        episode.steps = []

    def _robot_count(self, robot_id: str) -> dict[str, int]:
        return self.robot_counts.setdefault(robot_id, {'received': 0, 'stored': 0})

    def _store(self, arrays: dict[str, np.ndarray]) -> None:
        images = arrays.get(_IMAGES_KEY) if self.config.keep_images else None
        hands = arrays.get(_HANDS_KEY)
        for t, (observation, action, next_observation, goal) in enumerate(zip(
                *(arrays[key] for key in _EPISODE_KEYS))):
            self.trainer.add_step(
                observation, action, next_observation, goal,
                image=images[t] if images is not None and t == 0 else None,
                next_image=images[t + 1] if images is not None else None,
                hand=hands[t] if hands is not None else None,
                next_hand=hands[t + 1] if hands is not None else None)
        self.trainer.end_episode()

    def _write_episode(self, episode: _Episode, arrays: dict[str, np.ndarray]) -> None:
        assert self._episode_dir is not None
        self._sequence += 1
        path = self._episode_dir / f'{self._sequence:09d}.npz'
        _save_npz(path, {
            **arrays, 'robot_id': np.array(episode.robot_id),
            'episode_id': np.array(episode.episode_id),
            'first_step': np.array(episode.steps[0].step_index)})

    def record_episodes(self, run_dir: str | os.PathLike) -> pathlib.Path:
        """Write every part stored from now on to `run_dir/episodes` (see the module doc)."""
        directory = pathlib.Path(run_dir) / EPISODES_DIR
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._episode_dir = directory
        return directory

    def flush_open_episodes(self) -> None:
        """Store every robot's unfinished episode as truncated (before a final checkpoint)."""
        with self._lock:
            self.flush_open_episodes_locked()

    def flush_open_episodes_locked(self) -> None:
        """flush_open_episodes() for a caller already inside exclusive()."""
        for episode in self._episodes.values():
            if episode.steps:
                self._flush(episode)

    @contextlib.contextmanager
    def exclusive(self) -> Any:
        """Hold the ingestion lock (no transition is checked or stored meanwhile)."""
        with self._lock:
            yield

    # Training (one thread).

    @property
    def updates(self) -> int:
        """TD3 updates done (resumed runs included)."""
        return self.trainer.updates

    def updates_due(self) -> int:
        """Return the updates owed for the transitions stored so far (done ones included)."""
        return self.trainer.updates_due()

    def train(self, max_updates: int) -> int:
        """Run up to `max_updates` of the owed updates; return how many ran.

        Stops early at a multiple of broadcast_every, so that weights go out exactly there.
        """
        return self.trainer.train(max_updates, lock=self._lock, stop=self.broadcast_due)

    def broadcast_due(self) -> bool:
        """Whether the updates passed a multiple of broadcast_every since the last broadcast."""
        every = self.config.broadcast_every
        return self.updates // every > self._broadcast_at // every

    def checkpoint_due(self) -> bool:
        """Whether a checkpoint is due (see the module doc).

        Due when the updates passed a multiple of checkpoint_every (> 0) since the last
        checkpoint, or when checkpoint_period_s (> 0) passed since it with new updates.
        """
        config = self.config
        every, period = config.checkpoint_every, config.checkpoint_period_s
        if every and self.updates // every > self._checkpoint_at // every:
            return True
        return bool(period) and self.updates > self._checkpoint_at and (
            self._clock() - self._checkpoint_time >= period)

    def policy_weights(self) -> tuple[int, str, bytes]:
        """Return a new weights version: (version, config JSON, safetensors bytes)."""
        self.weights_version += 1
        self._broadcast_at = self.updates
        actor = self.served_actor if self.served_actor is not None else self.agent.actor
        config_json, data = encode_policy_weights(
            actor, {'version': self.weights_version, 'updates': self.updates,
                    'task': self.config.task})
        return self.weights_version, config_json, data

    def status(self) -> dict[str, Any]:
        """Counters for logs and the status topic (JSON-able)."""
        with self._lock:
            pending = sum(len(e.steps) for e in self._episodes.values())
            robots = {robot: {**self.robot_counts.get(robot, {}), 'episode_id': e.episode_id,
                              'next_step': e.next_step}
                      for robot, e in sorted(self._episodes.items())}
            due = self.updates_due()
            status = {**self.counts, 'pending': pending, 'replay': len(self.buffer),
                      'updates': self.updates, 'updates_behind': max(0, due - self.updates),
                      'weights_version': self.weights_version, 'robots': robots}
            box = self.config.frame_goals_hand_box
            if box is not None:  # none: relabelling imagines from the prior (no hands sent?)
                status['frame_goals_in_hand_box'] = int(box.inside(self.buffer.hands()).sum())
            return status

    # Checkpoints (one thread).

    def save(self, run_dir: str | os.PathLike) -> pathlib.Path:
        """Write replay and checkpoint atomically into `run_dir`; return the checkpoint path."""
        run_dir = pathlib.Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            replay = self.buffer.export()
            counts = self.counts
            sequence = self._sequence
        _save_npz(run_dir / REPLAY_FILE, {**replay, _SEQUENCE_KEY: sequence})
        modules, optimizers = self.trainer.network_state()
        updates = self.updates
        path = run_dir / CHECKPOINT_FILE
        checkpoints.save_checkpoint(
            path, modules, optimizers, dataclasses.asdict(self.config),
            {'format_version': FORMAT_VERSION, 'updates': updates, 'counts': counts,
             'weights_version': self.weights_version, 'broadcast_at': self._broadcast_at,
             'episode_sequence': sequence})
        self._checkpoint_at, self._checkpoint_time = updates, self._clock()
        for number, file in _episode_files(run_dir / EPISODES_DIR):
            if number <= sequence:  # in the replay file now
                with contextlib.suppress(FileNotFoundError):
                    file.unlink()
        return path

    def resume(self, run_dir: str | os.PathLike) -> bool:
        """Load `run_dir`'s checkpoint, replay and newer episode files; return whether any was.

        Raises CheckpointError (a ValueError) naming the file for an unreadable checkpoint or
        replay, or for a run of another task or other network sizes.
        """
        run_dir = pathlib.Path(run_dir)
        path = run_dir / CHECKPOINT_FILE
        found = path.is_file()
        if found:
            saved = checkpoints.load_checkpoint(path)
            self._check_compatible(saved.config, path)
            try:
                self.trainer.load_network_state(saved.modules, saved.optimizers,
                                                int(saved.metadata['updates']))
            except (KeyError, RuntimeError, TypeError, ValueError) as error:
                text = ' '.join(str(error).split())[:300]
                raise checkpoints.CheckpointError(
                    f'{path} does not fit the networks: {text}') from None
            self.weights_version = int(saved.metadata.get('weights_version', 0))
            self._broadcast_at = int(saved.metadata.get('broadcast_at', 0))
            self._checkpoint_at = self.updates
        replay = run_dir / REPLAY_FILE
        sequence = 0
        with self._lock:
            if found:
                counts = saved.metadata.get('counts', {})
                self._counts.update({key: int(value) for key, value in counts.items()
                                     if key in self._counts})
                self.trainer.stored = int(counts.get('stored', 0))  # with a replay or not
            if found and replay.is_file():
                state = _load_npz(replay)
                sequence = int(state.pop(_SEQUENCE_KEY, 0))
                shape = state['images'].shape[1:] if 'images' in state else None
                if shape != self.config.image_shape:
                    raise checkpoints.CheckpointError(
                        f'{replay} keeps frames of shape {shape}, this learner '
                        f'{self.config.image_shape} (fine_tune_vae_every or vae.image_size '
                        'changed): use another run_dir')
                try:
                    self.trainer.restore_replay(state, self.trainer.stored)
                except (KeyError, IndexError, TypeError, ValueError) as error:
                    raise checkpoints.CheckpointError(
                        f'{replay} is not a replay buffer: {error!r}') from None
            self._episodes.clear()
            self._sequence = sequence
            for number, file in _episode_files(run_dir / EPISODES_DIR):
                if number <= sequence:
                    continue
                try:
                    arrays = self._read_episode(file)
                except checkpoints.CheckpointError as error:
                    self.skipped_files.append(f'{file}: {error}')
                    with contextlib.suppress(OSError):
                        file.rename(file.with_suffix('.corrupt'))
                    continue
                self._store(arrays)
                self._sequence = number
                found = True
            # Episode files newer than the checkpoint hold transitions received after it.
            self._counts['received'] = max(self._counts['received'],
                                           self.trainer.stored - self._counts['seeded'])
        return found

    def note_seeded(self, count: int) -> None:
        """Count transitions the host stored in the replay itself (not received)."""
        with self._lock:
            self._counts['seeded'] += int(count)

    def _read_episode(self, file: pathlib.Path) -> dict[str, np.ndarray]:
        state = _load_npz(file)
        try:
            arrays = {key: np.asarray(state[key], np.float32) for key in _EPISODE_KEYS}
        except KeyError as error:
            raise checkpoints.CheckpointError(f'no {error} array') from None
        steps = len(arrays['action'])
        dims = (self.config.latent_dim, self.config.action_dim, self.config.latent_dim,
                self.config.latent_dim)
        if steps < 1 or any(arrays[key].shape != (steps, dim)
                            for key, dim in zip(_EPISODE_KEYS, dims)):
            raise checkpoints.CheckpointError(
                f'arrays of shapes {[arrays[key].shape for key in _EPISODE_KEYS]} do not fit '
                f'latent_dim {self.config.latent_dim} and action_dim {self.config.action_dim}')
        shape = self.config.image_shape
        if shape is not None:
            images = state.get(_IMAGES_KEY)
            expected = (steps + 1, *shape)
            if images is None or images.dtype != np.uint8 or images.shape != expected:
                got = 'none' if images is None else f'{images.dtype} {images.shape}'
                raise checkpoints.CheckpointError(
                    f'frames {got}, the replay keeps uint8 {expected}')
            arrays[_IMAGES_KEY] = images
        hands = state.get(_HANDS_KEY)  # episode files written before hands were kept: none
        if hands is not None and hands.shape == (steps + 1, HAND_SIZE):
            arrays[_HANDS_KEY] = np.asarray(hands, np.float32)
        return arrays

    def _check_compatible(self, saved: dict[str, Any], path: pathlib.Path) -> None:
        config = self.config
        mine = (config.task, config.latent_dim, config.action_dim,
                list(config.td3.hidden_sizes))
        theirs = (saved.get('task'), saved.get('latent_dim'), saved.get('action_dim'),
                  list(saved.get('td3', {}).get('hidden_sizes', [])))
        if mine != theirs:
            raise ValueError(f'{path} holds a run of (task, latent_dim, action_dim, '
                             f'hidden_sizes) {theirs}, not {mine}: use another run_dir')

    def load_actor(self, path: str | os.PathLike) -> pathlib.Path:
        """Load the actor of a learner or pipeline checkpoint for serving; return its file.

        The actor alone, of the checkpoint's sizes (goals the size of observations); it is
        what policy_weights() broadcasts from then on.
        """
        path = resolve_checkpoint(path)
        state = checkpoints.load_checkpoint(path).modules.get('actor')
        if state is None:
            raise checkpoints.CheckpointError(f'{path} holds no actor')
        try:
            self.served_actor = Actor.from_state_dict(state)
        except ValueError as error:
            raise checkpoints.CheckpointError(f'{path}: {error}') from None
        return path


def _save_npz(path: pathlib.Path, arrays: dict[str, Any]) -> None:
    """Write arrays to `path` atomically (core.files)."""
    atomic_write(path, lambda stream: np.savez(stream, **arrays))


def _load_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
    """Read every array of an .npz file (no pickles); CheckpointError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise checkpoints.CheckpointError(f'cannot read {path}: {error}') from None


def _episode_files(directory: pathlib.Path) -> list[tuple[int, pathlib.Path]]:
    """Return the (sequence number, path) of a directory's episode files, in order."""
    if not directory.is_dir():
        return []
    files = [(int(file.stem), file) for file in directory.glob('*.npz') if file.stem.isdigit()]
    return sorted(files)


def status_json(status: dict[str, Any]) -> str:
    """Serialise a status dict compactly."""
    return json.dumps(status, separators=(',', ':'), sort_keys=True)
