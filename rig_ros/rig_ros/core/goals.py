"""Which goal a robot pursues, and when its episodes start: the goal scheduler's state machine.

Practice (goal source 'prior'): WAITING until a VAE gives the latent size, then RESETTING
(the robot is reset) and RUNNING (an imagined goal z ~ N(0, I) is pursued for
`episode_length` steps) in turn. An episode ends when the robot's last transition of it
arrives (or after `episode_timeout_s`), which calls for the next reset.
Exploration (goal source 'prior', `explore` on, no VAE yet): while the learner's latest stage
is 'explore' (`set_learner_stage`), episodes run as in practice, but each goal is an exploration
goal (source 'explore', empty mean: the policy acts at random). Any other stage (or none)
starts no new exploration episode (a running one finishes) and the scheduler WAITS; a VAE
(`model_ready`) starts practice, episode ids growing on.
Reach (goal source 'image', or once a user's goal image arrives, for good): REACHING the
latest encoded goal image for `episode_length` steps (then the robot stands still, and a
lockstep sim stops stepping, until the next goal image), without resets.

Pure logic: the node performs resets and encodings and reports back; times are passed in.
"""

from dataclasses import dataclass
import enum
import json
import math
from typing import Any, Literal, Optional

import numpy as np

from rig_ros.core.hands import HandBox, HandTrack
from rig_ros.core.skew_fit import latent_skew_weights

GoalSource = Literal['prior', 'image']
ImaginedGoals = Literal['prior', 'frames']
IMAGINED_GOALS = ('prior', 'frames')
GoalKind = Literal['prior', 'image', 'explore']  # rig_msgs/Goal source
EXPLORE_STAGE = 'explore'  # the learner's stage in which robots explore (core.lifecycle)


def check_frames_option(name: str, enabled: bool, imagined_goals: str) -> None:
    """Raise ValueError naming `name` when an option of the frames' goals is on without them."""
    if enabled and imagined_goals != 'frames':
        raise ValueError(f"{name} works on the frames' goals: it needs imagined_goals "
                         f"'frames', got {imagined_goals!r}")


def check_imagined_goals(value: object) -> None:
    """Raise ValueError naming `imagined_goals` unless `value` is one of IMAGINED_GOALS."""
    if value not in IMAGINED_GOALS:
        raise ValueError(f'imagined_goals must be one of {IMAGINED_GOALS}, got {value!r}')


@dataclass(frozen=True)
class GoalSchedulerConfig:
    """Settings of the goal_scheduler node.

    goal_source: 'prior' practises towards imagined goals with resets between episodes;
        'image' waits for goal images on rig/goal_image (a goal image also switches a
        practising scheduler to reaching it).
    episode_length: steps of an episode, practising or reaching a goal image (the policy
        marks the last one and then stands still).
    seed: seed of the imagined goals.
    imagined_goals: 'prior' imagines z ~ N(0, I) (RIG); 'frames' draws the encoder mean of a
        frame this robot's camera gave under the current VAE (rig/latent; Skew-Fit's source,
        unskewed): prior draws can lie far from anything a scene shows. Until such a frame
        arrives, the prior.
    frame_pool_size: 'frames': latents kept to draw from (a uniform sample of those seen).
    skew_alpha: 'frames': Skew-Fit's skew in [-1, 0] (0: off, RIG): a kept latent is drawn
        with weight ~ p(z)^alpha, p the pool's Gaussian KDE ('latent_kde'), so latents of rare
        scenes (a puck pushed far) are imagined more. Set the learner's skew_fit.alpha alike.
    skew_max_weight_ratio: cap of one latent's weight, in multiples of the uniform weight.
    skew_refit_every: the pool's density is refitted once this many more frames were seen
        (a fit of 2,000 latents takes about 0.4 s: not one per episode).
    frame_goals_hand_box: 'frames': keep only latents of frames taken with the hand inside
        this box (robot/state at the frame's stamp), so that goals show the hand where the
        task's goals put it (a pusher's goal scenes hold the hand in a small box). None:
        every frame.
    hand_stamp_tolerance_s: a frame's hand is the robot/state nearest to its stamp, if that
        is this close; a frame without one is not kept.
    robot_id: robot whose transitions end its episodes; empty: the node's namespace without
        the leading '/' ('policy' in the root namespace), as the policy names itself.
    vae_checkpoint: VAE checkpoint file or run directory (for the latent size and the goal
        decoder); unset: wait for the learner's weights broadcast.
    explore: goal source 'prior' without a VAE: run exploration episodes (random actions)
        while the learner's stage is 'explore'; false: only wait for a VAE.
    reset_timeout_s: a robot/reset call without an answer after this long is retried.
    retry_period_s: pause before retrying a failed reset.
    episode_timeout_s: start the next episode when the current one's end has not been seen
        after this long (a lost transition or a restarted policy); 0 waits forever.
    encode_timeout_s: a goal image not encoded after this long (rig/encode absent or slow)
        is dropped with an error.
    torch_threads: CPU threads for PyTorch; the machine's cores are shared by the graph.
    """

    goal_source: GoalSource = 'prior'
    episode_length: int = 50
    seed: int = 0
    imagined_goals: ImaginedGoals = 'prior'
    frame_pool_size: int = 2000
    skew_alpha: float = 0.0
    skew_max_weight_ratio: float = 20.0
    skew_refit_every: int = 500
    frame_goals_hand_box: Optional[HandBox] = None
    hand_stamp_tolerance_s: float = 0.05
    robot_id: str = ''
    vae_checkpoint: Optional[str] = None
    explore: bool = True
    reset_timeout_s: float = 10.0
    retry_period_s: float = 1.0
    episode_timeout_s: float = 120.0
    encode_timeout_s: float = 10.0
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if self.goal_source not in ('prior', 'image'):
            raise ValueError(f"goal_source must be 'prior' or 'image', got {self.goal_source!r}")
        check_imagined_goals(self.imagined_goals)
        if not (math.isfinite(self.skew_alpha) and -1.0 <= self.skew_alpha <= 0.0):
            raise ValueError(f'skew_alpha must be in [-1, 0] (0: off), got {self.skew_alpha!r}')
        check_frames_option('skew_alpha', bool(self.skew_alpha), self.imagined_goals)
        check_frames_option('frame_goals_hand_box', self.frame_goals_hand_box is not None,
                            self.imagined_goals)
        if not (math.isfinite(self.hand_stamp_tolerance_s) and self.hand_stamp_tolerance_s > 0):
            raise ValueError(f'hand_stamp_tolerance_s must be a positive number of seconds, '
                             f'got {self.hand_stamp_tolerance_s!r}')
        if not self.skew_max_weight_ratio >= 1.0:
            raise ValueError(f'skew_max_weight_ratio must be >= 1, '
                             f'got {self.skew_max_weight_ratio!r}')
        for name in ('episode_length', 'torch_threads', 'frame_pool_size',
                     'skew_refit_every'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name} must be a positive integer, got {value!r}')
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f'seed must be a non-negative integer, got {self.seed!r}')
        for name in ('reset_timeout_s', 'retry_period_s', 'encode_timeout_s'):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f'{name} must be a positive number of seconds, got {value!r}')
        if not math.isfinite(self.episode_timeout_s) or self.episode_timeout_s < 0:
            raise ValueError(f'episode_timeout_s must be >= 0 (0: none), '
                             f'got {self.episode_timeout_s!r}')


def parse_learner_status(text: str) -> dict[str, Any]:
    """Parse the learner's JSON status; a 'stage' that is not a string counts as none.

    Raises ValueError for text that is not a JSON object.
    """
    status = json.loads(text)  # json.JSONDecodeError is a ValueError
    if not isinstance(status, dict):
        raise ValueError(f'a JSON {type(status).__name__}, not an object')
    if not isinstance(status.get('stage'), str):
        status['stage'] = None
    return status


def learner_status_summary(status: dict[str, Any]) -> str:
    """Return ', waiting for X (P% done)' from a status's 'waiting_for' and 'progress'."""
    details = ''
    if status.get('waiting_for'):
        details += f", waiting for {status['waiting_for']}"
    progress = status.get('progress')
    if isinstance(progress, (int, float)) and not isinstance(progress, bool) and math.isfinite(
            progress):
        details += f' ({progress:.0%} done)'
    return details


class Phase(enum.Enum):
    """Where the scheduler stands."""

    WAITING = "waiting for a VAE or the learner's explore stage"
    RESETTING = 'resetting the robot'
    RUNNING = 'running a practice or exploration episode'
    REACHING = 'reaching a goal image'


@dataclass(frozen=True)
class GoalCommand:
    """A goal to publish (the fields of rig_msgs/Goal that the scheduler decides)."""

    mean: np.ndarray  # empty for an exploration goal
    episode_id: int
    episode_length: int  # 0: no limit
    source: GoalKind
    explore: bool


class FramePool:
    """A uniform sample of the latents seen under one VAE version (reservoir sampling).

    A latent of another version empties the pool first: goals are drawn in the VAE's current
    latent space only. Skewed draws weigh the kept latents by their KDE, refitted once
    `refit_every` more latents were offered: a fit of 2,000 latents took 0.4 s on the 2-core
    CPU beside other work, too long a pause in the scheduler's callback at every episode.
    """

    def __init__(self, size: int, rng: np.random.Generator, refit_every: int = 500) -> None:
        self._latents: list[np.ndarray] = []
        self._size = size
        self._rng = rng
        self._seen = 0
        self._refit_every = refit_every
        self._weights: Optional[np.ndarray] = None
        self._weights_key: tuple[float, float] = (0.0, 0.0)  # (alpha, cap) of the fit
        self._fitted_at = 0  # latents offered when the weights were fitted
        self.fits = 0  # KDE fits so far
        self.version: Optional[int] = None

    def __len__(self) -> int:
        return len(self._latents)

    def add(self, latent: np.ndarray, version: int) -> None:
        """Offer one frame's latent under VAE `version`."""
        if version != self.version:
            self._latents, self._seen, self.version = [], 0, version
            self._weights = None
        self._seen += 1
        if len(self._latents) < self._size:
            self._latents.append(np.array(latent, np.float32))
        else:
            slot = int(self._rng.integers(self._seen))
            if slot < self._size:
                self._latents[slot] = np.array(latent, np.float32)

    def draw(self, skew_alpha: float = 0.0, max_weight_ratio: float = 20.0) -> np.ndarray:
        """Return a copy of one kept latent (the pool must not be empty).

        Uniformly, or with skew_alpha < 0 by weight ~ p(z)^alpha over the pool's KDE
        (`core.skew_fit.latent_skew_weights`). Between refits a slot the reservoir refilled
        keeps its predecessor's weight.
        """
        if not skew_alpha:
            return self._latents[int(self._rng.integers(len(self._latents)))].copy()
        key = (skew_alpha, max_weight_ratio)
        if (self._weights is None or len(self._weights) != len(self._latents)
                or self._weights_key != key or self._seen - self._fitted_at >= self._refit_every):
            self._weights = latent_skew_weights(np.stack(self._latents), skew_alpha,
                                                max_weight_ratio)
            self._weights_key, self._fitted_at = key, self._seen
            self.fits += 1
        return self._latents[int(self._rng.choice(len(self._latents), p=self._weights))].copy()


class GoalScheduler:
    """Episodes and goals of one robot."""

    def __init__(self, config: GoalSchedulerConfig) -> None:
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        self._phase = Phase.WAITING if config.goal_source == 'prior' else Phase.REACHING
        self._episode_id = 0
        self._started = 0.0
        self._model_loaded = False
        self._learner_stage: Optional[str] = None
        self.goal: Optional[GoalCommand] = None
        self.frames = FramePool(config.frame_pool_size, np.random.default_rng((config.seed, 1)),
                                config.skew_refit_every)
        # frame_goals_hand_box: the hand's recent positions, and the frames not kept by reason.
        self.hands = HandTrack()
        self.frames_left_out = {'no hand': 0, 'hand outside the box': 0}

    @property
    def phase(self) -> Phase:
        """The current phase."""
        return self._phase

    @property
    def episode_id(self) -> int:
        """Id of the latest goal's episode (0 before the first); ids only grow."""
        return self._episode_id

    @property
    def reset_due(self) -> bool:
        """True while the robot should be (or is being) reset."""
        return self._phase is Phase.RESETTING

    @property
    def model_loaded(self) -> bool:
        """Whether a VAE is loaded (practice, not exploration)."""
        return self._model_loaded

    @property
    def learner_stage(self) -> Optional[str]:
        """The learner's latest stage (None: no status, or one without a stage)."""
        return self._learner_stage

    @property
    def may_explore(self) -> bool:
        """Whether the next episode may be an exploration one (no VAE, stage 'explore')."""
        return (self.config.goal_source == 'prior' and self.config.explore
                and not self._model_loaded and self._learner_stage == EXPLORE_STAGE)

    @property
    def exploring(self) -> bool:
        """Whether the latest goal is an exploration goal."""
        return self.goal is not None and self.goal.source == 'explore'

    def _episode_over(self) -> None:
        """Reset for the next episode, or wait when none may start."""
        self._phase = (Phase.RESETTING if self._model_loaded or self.may_explore
                       else Phase.WAITING)

    def model_ready(self) -> None:
        """Note that a VAE is loaded: practice can begin with a reset."""
        self._model_loaded = True
        if self._phase is Phase.WAITING:
            self._phase = Phase.RESETTING

    def set_learner_stage(self, stage: Optional[str]) -> None:
        """Take the learner's latest stage (None: its status has none: not exploring).

        Stage 'explore' starts exploration episodes while no VAE is loaded; another stage
        starts none (a running one finishes, a pending reset is called off).
        """
        self._learner_stage = stage
        if self._model_loaded:
            return
        if self._phase is Phase.WAITING and self.may_explore:
            self._phase = Phase.RESETTING
        elif self._phase is Phase.RESETTING and not self.may_explore:
            self._phase = Phase.WAITING

    def seen_hand(self, stamp: float, hand: np.ndarray) -> None:
        """Take the hand's position (robot/state) at time `stamp` (frame_goals_hand_box)."""
        self.hands.add(stamp, hand)

    def seen_latent(self, latent: np.ndarray, version: int, stamp: float = math.nan) -> None:
        """Take the latent of a frame this robot's camera gave (kept for 'frames' goals).

        stamp: when the frame was taken; with `frame_goals_hand_box` only frames whose hand
        (`seen_hand` nearest to the stamp, within `hand_stamp_tolerance_s`) lies in the box
        are kept.
        """
        if self.config.imagined_goals != 'frames' or not np.all(np.isfinite(latent)):
            return
        box = self.config.frame_goals_hand_box
        hand = (None if box is None
                else self.hands.at(stamp, self.config.hand_stamp_tolerance_s))
        if box is not None and (hand is None or not box.contains(hand)):
            self.frames_left_out['no hand' if hand is None else 'hand outside the box'] += 1
            return
        self.frames.add(latent, version)

    def frame_pool_summary(self) -> str:
        """Say how many frames the hand box kept and left out ('' without a box)."""
        if self.config.frame_goals_hand_box is None:
            return ''
        left_out = ', '.join(f'{count} {reason}'
                             for reason, count in self.frames_left_out.items())
        return (f'{len(self.frames)} frames with the hand in the box kept for goals, left '
                f'out: {left_out}')

    def imagine(self, latent_dim: int) -> np.ndarray:
        """Return an imagined goal: a seen frame's latent ('frames', if any), else z ~ N(0, I)."""
        if self.config.imagined_goals == 'frames' and len(self.frames):
            goal = self.frames.draw(self.config.skew_alpha, self.config.skew_max_weight_ratio)
            if goal.shape == (latent_dim,):  # else a VAE of another size is loading
                return goal
        return self._rng.standard_normal(latent_dim).astype(np.float32)

    def reset_done(self, latent_dim: int, now: float) -> Optional[GoalCommand]:
        """Return the next episode's goal after a reset that succeeded at `now`.

        An imagined goal of `latent_dim` latents once a VAE is loaded, else an exploration
        goal (empty mean). None when no reset was due any more (a goal image arrived
        meanwhile, or the learner left the explore stage).
        """
        if self._phase is not Phase.RESETTING:
            return None
        self._episode_id += 1
        self._phase = Phase.RUNNING
        self._started = now
        if self._model_loaded:
            self.goal = GoalCommand(self.imagine(latent_dim), self._episode_id,
                                    self.config.episode_length, 'prior', True)
        else:
            self.goal = GoalCommand(np.zeros(0, np.float32), self._episode_id,
                                    self.config.episode_length, 'explore', True)
        return self.goal

    def episode_end(self, episode_id: int) -> bool:
        """Take the last transition of `episode_id`; True if the current episode ended."""
        if self._phase is Phase.RUNNING and episode_id == self._episode_id:
            self._episode_over()
            return True
        return False

    def timed_out(self, now: float) -> bool:
        """Return True (the episode is over) if the running episode has lasted too long."""
        timeout = self.config.episode_timeout_s
        if self._phase is Phase.RUNNING and timeout > 0 and now - self._started >= timeout:
            self._episode_over()
            return True
        return False

    def image_goal(self, mean: np.ndarray) -> GoalCommand:
        """Take an encoded goal image: reach it without exploring, from now on."""
        self._episode_id += 1
        self._phase = Phase.REACHING
        self.goal = GoalCommand(np.asarray(mean, np.float32), self._episode_id,
                                self.config.episode_length, 'image', False)
        return self.goal
