"""What the policy node decides at each control step, without ROS: gating, steps, transitions.

`PolicyRuntime` holds the latest latent, the latest camera frame (camera_pipeline's rgb8
image), the episode's goal, the activation state and the actor. `step(now)` returns the
command (a normalised action, or zeros) and, when the observation after an action has
arrived, the finished transition. Times are seconds on one clock (the node's); a latent or
frame belongs to the goal's episode when its stamp is at or after the goal's stamp (the
episode start).

Two kinds of episode, told apart by the goal's source:
- practice (any source but 'explore'): the observation is the latest latent. A transition is
  (z_t, a_t, z_t+1) with the VAE versions of its two latents (`Latent.model_version`) and,
  unless `transition_images` is false, the frames whose stamps equal the two latents' stamps
  (the encoder stamps a latent with its frame's stamp), looked up among the last
  FRAME_HISTORY frames; None where a frame is missing. Actions: the actor with exploration
  noise when the goal and the config allow it, uniform random actions while exploring without
  weights, zeros without weights otherwise.
- exploration (source EXPLORE_SOURCE, an empty goal mean; the run's stage before any VAE):
  the observation is the latest frame. Actions are uniform in [-1, 1], a new one every
  `explore_hold_steps` steps of the episode (seeded by `seed`); policy weights are not used.
  With `explore_aimed_pushes` a share of them is a push aimed at the puck a camera tracker
  finds in the frame (`core.pushes`, `core.tracker`), steered by the hand at each frame.
  A transition has empty observation, next_observation and goal, the action, the frame acted
  on and the next frame (always attached), policy and VAE versions 0.
Both kinds carry the hand position at each of their two observations (`set_hand`, the
robot/state nearest to the observation's stamp within `hand_stamp_tolerance_s`; None where
none is known): the learner keeps frames' goals to frames with the hand in a box.

Rules, in order: inactive, no goal, exploration with `explore` false, no observation (latent
or frame), in practice a non-finite latent or goal or a dimension mismatch, an observation
older than the episode, a stale observation (timer mode) give zeros and drop the action
awaiting its next observation (its transition is lost; the learner sees a gap). A new
observation first closes the pending transition; then, unless the episode's steps are used
up, the policy acts on it. Timer mode holds the last action until a new observation arrives
(one step per observation), so a transition's next observation is always the next step's
observation. `set_frame` refuses (ValueError) frames that are not uint8 image_size x
image_size x 3.

Policy weights travel as safetensors bytes (`encode_policy_weights`/`decode_policy_weights`):
the actor's tensors and, as JSON, the network's dimensions and hidden sizes. Acting loads them
into a `core.actor.Actor` alone: no critics, targets or optimisers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import json
from typing import Any, Mapping, Optional, Protocol, Union

import numpy as np
import torch

from rig_ros.core.actor import Actor, GoalPolicy, PolicySpec
from rig_ros.core.checkpoints import CheckpointError, deserialize_state, serialize_state
from rig_ros.core.hands import HandBox, HandTrack
from rig_ros.core.noise import ExplorationConfig
from rig_ros.core.pushes import AimedPush, push_into_box
from rig_ros.core.tracker import PuckTracker

EXPLORE_SOURCE = 'explore'
"""Goal source of an exploration episode (random actions on frames, no VAE yet)."""
FRAME_HISTORY = 30
"""Frames kept for practice transitions: latents lag their frames by far less."""


@dataclass(frozen=True)
class PolicyConfig(ExplorationConfig):
    """The acting policy of one robot: ExplorationConfig's noise settings, and these."""

    robot_id: str = ''
    """Id sent with every transition; empty: the node's namespace."""
    act_on_latent: bool = False
    """Act once per new latent (lockstep sims); false: act at control_rate_hz on the latest
    latent (real time)."""
    control_rate_hz: float = 10.0
    """Command rate in timer mode."""
    stale_after_s: float = 0.3
    """In timer mode a latent older than this (by its stamp) stops the robot."""
    max_speed_m_s: float = 0.2
    """End-effector speed of action 1 (ee_velocity = action * max_speed_m_s)."""
    action_dim: int = 2
    """Action size (x, y velocity)."""
    frame_id: str = 'base'
    """Frame of the ee_velocity commands."""
    explore: bool = True
    """Allow exploration noise when the goal asks for it (false: never explore)."""
    publish_transitions: bool = True
    """Send (z_t, a_t, z_t+1) to the learner."""
    start_active: bool = False
    """Act without waiting for policy/activate (sims)."""
    seed: int = 0
    """Seeds exploration noise and random actions."""
    explore_hold_steps: int = 5
    """Exploration episodes: steps each uniform random action is held."""
    transition_images: bool = True
    """Attach the frames of their latents to practice transitions (VAE fine-tuning); false
    saves bandwidth when the learner does not fine-tune. Exploration transitions always carry
    their frames."""
    image_size: int = 84
    """Side of camera_pipeline's square rgb8 frames; frames of another size are refused."""
    hand_stamp_tolerance_s: float = 0.05
    """An observation's hand is the robot/state nearest to its stamp, if this close."""
    explore_aimed_pushes: float = 0.0
    """Exploration episodes: share of the held actions replaced by a push aimed at the puck
    (`core.pushes`) that the tracker of `puck_tracker_file` finds in the frame, towards a
    uniform point of `explore_push_box`; a puck not seen or a hand not known: the random
    action. Shows a puck nobody puts back in many places."""
    explore_push_box: Optional[HandBox] = None
    """Where aimed pushes take the puck ({low: [x, y], high: [x, y]}, metres, the frame of
    robot/state): the task's puck-goal box."""
    puck_tracker_file: str = ''
    """Aimed pushes: a `core.tracker` calibration file (`rig tools calibrate-tracker`)."""

    def __post_init__(self) -> None:
        """Check the values; an error names the field."""
        super().__post_init__()
        for name in ('control_rate_hz', 'stale_after_s', 'max_speed_m_s', 'action_dim',
                     'explore_hold_steps', 'image_size', 'hand_stamp_tolerance_s'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)!r}')
        if not 0.0 <= self.explore_aimed_pushes <= 1.0:
            raise ValueError('explore_aimed_pushes must be in [0, 1], got '
                             f'{self.explore_aimed_pushes!r}')
        if self.explore_aimed_pushes > 0 and (self.explore_push_box is None
                                              or not self.puck_tracker_file):
            raise ValueError('explore_aimed_pushes needs explore_push_box and '
                             'puck_tracker_file (rig tools calibrate-tracker)')


@dataclass(frozen=True)
class Latent:
    """One encoded camera frame."""

    mean: np.ndarray
    stamp: float
    model_version: int = 0
    """Version of the VAE that encoded it."""


@dataclass(frozen=True)
class Frame:
    """One camera frame: camera_pipeline's uint8 HxWx3 RGB image and its stamp."""

    image: np.ndarray
    stamp: float


@dataclass(frozen=True)
class EpisodeGoal:
    """The goal of one episode; episode_length 0 means no step limit."""

    mean: np.ndarray
    episode_id: int
    episode_length: int
    explore: bool
    stamp: float
    source: str = ''
    """Goal.source: EXPLORE_SOURCE makes an exploration episode (the mean is empty)."""

    @property
    def exploration(self) -> bool:
        """Whether this is an exploration episode (frames and random actions, no latents)."""
        return self.source == EXPLORE_SOURCE


@dataclass(frozen=True)
class TransitionRecord:
    """One finished step, as the learner wants it."""

    episode_id: int
    step_index: int
    observation: np.ndarray
    action: np.ndarray
    next_observation: np.ndarray
    goal: np.ndarray
    episode_end: bool
    policy_version: int
    stamp: float  # of the next observation
    image: Optional[np.ndarray] = None
    """uint8 HxWx3 frame of `observation` (camera_pipeline's image); None: not sent."""
    next_image: Optional[np.ndarray] = None
    """uint8 HxWx3 frame of `next_observation`; None: not sent."""
    vae_version: int = 0
    """VAE version that encoded `observation`; 0: no VAE (an exploration step, empty latents)."""
    next_vae_version: int = 0
    """VAE version that encoded `next_observation`."""
    hand: Optional[np.ndarray] = None
    """Hand position (x, y, z) when the frame of `observation` was taken; None: unknown."""
    next_hand: Optional[np.ndarray] = None
    """Hand position when the frame of `next_observation` was taken; None: unknown."""


@dataclass(frozen=True)
class StepResult:
    """What to publish after one decision: a command, maybe a transition, and why."""

    action: np.ndarray  # normalised, finite, zeros when not acting
    velocity: np.ndarray  # action * max_speed_m_s
    transition: Optional[TransitionRecord]
    acted: bool  # a new step was taken (False: zeros, or a held action)
    reason: str  # 'act', 'hold', or why the robot is stopped


class HasActor(Protocol):
    """Anything holding an actor (a GoalConditionedTD3, a GoalPolicy)."""

    actor: Actor


def encode_policy_weights(source: Union[Actor, HasActor],
                          metadata: Optional[Mapping[str, Any]] = None) -> tuple[str, bytes]:
    """Return (config JSON, safetensors bytes) of an actor for a Weights message."""
    actor = source if isinstance(source, Actor) else source.actor
    config = dataclasses.asdict(actor.spec)
    return json.dumps(config), serialize_state(actor.detached_state_dict(), config, metadata)


def decode_policy_weights(data: bytes) -> tuple[dict[str, torch.Tensor], PolicySpec]:
    """Decode `encode_policy_weights` bytes; raises ValueError for anything unusable."""
    state, config, _ = deserialize_state(data)  # CheckpointError is a ValueError
    try:
        spec = PolicySpec(int(config['obs_dim']), int(config['goal_dim']),
                          int(config['action_dim']),
                          tuple(int(size) for size in config['hidden_sizes']))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f'policy weights have a malformed config: {error!r}') from None
    if min(spec.obs_dim, spec.goal_dim, spec.action_dim, *spec.hidden_sizes, 1) < 1:
        raise CheckpointError(f'policy weights have non-positive sizes: {spec}')
    if not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise CheckpointError('policy weights must hold tensors only')
    return state, spec


@dataclass
class _Pending:
    """An action awaiting the observation it leads to."""

    observation: np.ndarray  # the latent mean; empty in exploration
    action: np.ndarray
    step_index: int
    policy_version: int
    episode_id: int
    stamp: float  # of the observation
    vae_version: int  # of the observation; 0 in exploration
    image: Optional[np.ndarray]  # the frame acted on (exploration only)


def check_frame(image: np.ndarray, size: int) -> str:
    """Return what is wrong with a frame ('' if nothing): uint8 size x size x 3 expected."""
    if image.dtype != np.uint8 or image.shape != (size, size, 3):
        return f'a {image.dtype} frame of shape {image.shape}, not uint8 {size}x{size}x3'
    return ''


class PolicyRuntime:
    """Decides commands and assembles transitions for one robot (see the module doc)."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self.active = config.start_active
        self.policy: Optional[GoalPolicy] = None  # the loaded actor, with exploration noise
        self.version = 0
        self.goal: Optional[EpisodeGoal] = None
        self.latent: Optional[Latent] = None
        self.frame: Optional[Frame] = None
        self.steps = 0  # actions taken in the goal's episode
        # One counter for latents and frames: a serial names one observation of either kind.
        self._serial = 0
        self._latent_serial = 0
        self._frame_serial = 0
        self._acted_serial = 0  # serial of the observation last acted on
        self._pending: Optional[_Pending] = None
        self._frames: dict[float, np.ndarray] = {}  # the last FRAME_HISTORY frames by stamp
        self._explore_action: Optional[np.ndarray] = None  # held random action
        self._rng = np.random.default_rng(config.seed)
        self._hands = HandTrack()
        # Aimed pushes draw from a generator of their own: the random actions stay the same.
        self._push_rng = np.random.default_rng((config.seed, 3))
        self._push: Optional[AimedPush] = None
        self.tracker = (PuckTracker.load(config.puck_tracker_file)
                        if config.explore_aimed_pushes > 0 else None)

    @property
    def episode_over(self) -> bool:
        """Whether the goal's episode has used all its steps."""
        return bool(self.goal and self.goal.episode_length and
                    self.steps >= self.goal.episode_length)

    @property
    def exploring(self) -> bool:
        """Whether the goal's episode is an exploration episode (acting on frames)."""
        return self.goal is not None and self.goal.exploration

    def set_active(self, active: bool) -> None:
        """Activate or deactivate acting; deactivation drops the pending action."""
        if not active:
            self._pending = None
        self.active = active

    def set_latent(self, latent: Latent) -> None:
        """Take a new latent (acted on by the next step() of a practice episode)."""
        self.latent = Latent(np.asarray(latent.mean, np.float32).ravel(), float(latent.stamp),
                             int(latent.model_version))
        self._serial += 1
        self._latent_serial = self._serial

    def set_frame(self, frame: Frame) -> None:
        """Take a new frame (acted on by the next step() of an exploration episode).

        Raises ValueError, keeping the previous frame, unless it is uint8 image_size^2 x 3.
        """
        image = np.asarray(frame.image)
        problem = check_frame(image, self.config.image_size)
        if problem:
            raise ValueError(problem)
        stamp = float(frame.stamp)
        self.frame = Frame(image, stamp)
        self._serial += 1
        self._frame_serial = self._serial
        if self.config.transition_images:
            self._frames.pop(stamp, None)  # a repeated stamp becomes the newest
            self._frames[stamp] = image
            while len(self._frames) > FRAME_HISTORY:
                del self._frames[next(iter(self._frames))]

    def set_hand(self, stamp: float, hand: np.ndarray) -> None:
        """Take the hand's position (robot/state) at time `stamp`."""
        self._hands.add(float(stamp), hand)

    def _hand_at(self, stamp: float) -> Optional[np.ndarray]:
        hand = self._hands.at(stamp, self.config.hand_stamp_tolerance_s)
        return None if hand is None else hand.astype(np.float32)

    def set_goal(self, goal: EpisodeGoal) -> bool:
        """Take a goal; a new episode id restarts the step count. Return True if it did."""
        goal = dataclasses.replace(goal, mean=np.asarray(goal.mean, np.float32).ravel())
        new_episode = self.goal is None or goal.episode_id != self.goal.episode_id
        self.goal = goal
        if new_episode:
            self.steps = 0
            self._pending = None
            self._explore_action = None
            self._push = None
            if self.policy is not None:
                self.policy.reset_noise()
        return new_episode

    def load_weights(self, data: bytes, version: int) -> None:
        """Load broadcast actor weights; raises ValueError and keeps the old ones if bad."""
        state, spec = decode_policy_weights(data)
        if spec.action_dim != self.config.action_dim or spec.obs_dim != spec.goal_dim:
            raise ValueError(f'policy weights for obs/goal/action sizes {spec.obs_dim}/'
                             f'{spec.goal_dim}/{spec.action_dim}; this policy acts in '
                             f'{self.config.action_dim} dimensions with goals like latents')
        if not all(torch.isfinite(tensor).all() for tensor in state.values()):
            raise ValueError('policy weights hold NaN or infinite values')
        try:  # into a new actor first: a partial load never reaches the one acting
            actor = Actor.from_state_dict(state, spec)
        except ValueError as error:
            raise ValueError(f'policy weights do not fit the actor: {error}') from None
        if self.policy is not None and self.policy.spec == spec:
            self.policy.actor.load_state_dict(actor.state_dict())  # the noise process goes on
        else:
            self.policy = GoalPolicy(actor, self.config, seed=self.config.seed)
        self.version = int(version)

    def step(self, now: float) -> StepResult:
        """Decide the command now; close the pending transition if its next observation is in."""
        reason = self._blocked(now)
        if reason:
            self._pending = None
            return self._result(self._zeros(), None, False, reason)
        goal = self.goal
        assert goal is not None
        serial = self._frame_serial if goal.exploration else self._latent_serial
        new = serial != self._acted_serial
        transition = None
        if new and self._pending is not None:
            transition = self._close(self._pending, goal)
            self._pending = None
        if self.episode_over:
            return self._result(self._zeros(), transition, False, 'episode over')
        if not new:
            if self._pending is not None:
                return self._result(self._pending.action, transition, False, 'hold')
            return self._result(self._zeros(), transition, False,
                                f'waiting for a new {self._observation_kind()}')
        if goal.exploration:
            frame = self.frame
            assert frame is not None
            pending = _Pending(np.zeros(0, np.float32), self._explore(), self.steps, 0,
                               goal.episode_id, frame.stamp, 0, frame.image)
        else:
            latent = self.latent
            assert latent is not None
            action = self._act(latent.mean, goal)
            if action is None:
                return self._result(self._zeros(), transition, False, 'no policy weights')
            pending = _Pending(latent.mean.copy(), action, self.steps, self.version,
                               goal.episode_id, latent.stamp, latent.model_version, None)
        self._acted_serial = serial
        self._pending = pending
        self.steps += 1
        return self._result(pending.action, transition, True, 'act')

    def _close(self, pending: _Pending, goal: EpisodeGoal) -> TransitionRecord:
        """Return the transition of `pending`, whose next observation has just arrived."""
        episode_end = bool(goal.episode_length) and pending.step_index == goal.episode_length - 1
        if goal.exploration:
            frame = self.frame
            assert frame is not None
            empty = np.zeros(0, np.float32)
            return TransitionRecord(
                pending.episode_id, pending.step_index, empty, pending.action, empty, empty,
                episode_end, 0, frame.stamp, image=pending.image, next_image=frame.image,
                hand=self._hand_at(pending.stamp), next_hand=self._hand_at(frame.stamp))
        latent = self.latent
        assert latent is not None
        return TransitionRecord(
            pending.episode_id, pending.step_index, pending.observation, pending.action,
            latent.mean.copy(), goal.mean.copy(), episode_end, pending.policy_version,
            latent.stamp, image=self._frames.get(pending.stamp),
            next_image=self._frames.get(latent.stamp), vae_version=pending.vae_version,
            next_vae_version=latent.model_version, hand=self._hand_at(pending.stamp),
            next_hand=self._hand_at(latent.stamp))

    def _observation_kind(self) -> str:
        return 'frame' if self.exploring else 'latent'

    def _blocked(self, now: float) -> str:
        """Return why the robot must stand still, '' when it may act."""
        goal = self.goal
        if not self.active:
            return 'inactive'
        if goal is None:
            return 'no goal'
        if goal.exploration:
            if not self.config.explore:
                return 'exploration episode, but explore is false'
            observation: Optional[Union[Frame, Latent]] = self.frame
        else:
            observation = self.latent
        kind = self._observation_kind()
        if observation is None:
            return f'no {kind}'
        if isinstance(observation, Latent):
            reason = self._latent_problem(observation, goal)
            if reason:
                return reason
        if observation.stamp < goal.stamp:
            return f'{kind} older than the episode'
        if not self.config.act_on_latent and now - observation.stamp > self.config.stale_after_s:
            return f'stale {kind}'
        return ''

    def _latent_problem(self, latent: Latent, goal: EpisodeGoal) -> str:
        """Return why a practice episode cannot act on this latent and goal, '' if it can."""
        if not (np.isfinite(latent.mean).all() and np.isfinite(goal.mean).all()):
            return 'non-finite latent or goal'
        if latent.mean.shape != goal.mean.shape:
            return (f'latent size {latent.mean.size} differs from goal size {goal.mean.size}')
        if self.policy is not None and latent.mean.size != self.policy.spec.obs_dim:
            return (f"latent size {latent.mean.size} differs from the policy's "
                    f'{self.policy.spec.obs_dim}')
        return ''

    def _explore(self) -> np.ndarray:
        """Return the exploration action of this step: a new one every explore_hold_steps.

        With `explore_aimed_pushes` a share of them is an aimed push, steered by the hand.
        """
        held = self.steps % self.config.explore_hold_steps
        if self._explore_action is None or held == 0:
            self._explore_action = self._rng.uniform(
                -1.0, 1.0, self.config.action_dim).astype(np.float32)
            self._push = self._draw_push() if held == 0 else None
        if self._push is not None:
            hand = self._hand_at(self.frame.stamp) if self.frame is not None else None
            if hand is not None:
                return self._push.action(hand[:2], held / self.config.explore_hold_steps
                                         ).astype(np.float32)
        return self._explore_action.copy()

    def _draw_push(self) -> Optional[AimedPush]:
        """Return a push aimed at the puck in the latest frame, by `explore_aimed_pushes`."""
        if (self.tracker is None or self.frame is None or self.config.explore_push_box is None
                or self._push_rng.random() >= self.config.explore_aimed_pushes):
            return None
        puck = self.tracker.locate(self.frame.image)
        if puck is None:
            return None
        return push_into_box(puck, self.config.explore_push_box, self._push_rng)

    def _act(self, observation: np.ndarray, goal: EpisodeGoal) -> Optional[np.ndarray]:
        explore = goal.explore and self.config.explore
        if self.policy is None:
            if not explore:
                return None
            return self._rng.uniform(-1.0, 1.0, self.config.action_dim).astype(np.float32)
        return self.policy.act(observation, goal.mean, explore=explore)

    def _result(self, action: np.ndarray, transition: Optional[TransitionRecord], acted: bool,
                reason: str) -> StepResult:
        action = np.asarray(action, np.float32)
        if action.shape != (self.config.action_dim,) or not np.isfinite(action).all():
            action, acted, reason = self._zeros(), False, 'non-finite action'
            self._pending = None
        return StepResult(action, action * np.float32(self.config.max_speed_m_s), transition,
                          acted, reason)

    def _zeros(self) -> np.ndarray:
        return np.zeros(self.config.action_dim, np.float32)
