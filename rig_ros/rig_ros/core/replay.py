"""Goal-relabeling replay buffer of RIG: rollout, prior (imagined) and future achieved goals."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import math

import numpy as np
import torch

from rig_ros.core.hands import HAND_SIZE
from rig_ros.core.rewards import RewardFn

ROLLOUT_GOAL, PRIOR_GOAL, FUTURE_GOAL = 0, 1, 2
"""Values of a batch's 'goal_source' entry."""

GoalSampler = Callable[[int], np.ndarray]


@dataclass
class RelabelConfig:
    """Where each sampled transition's goal comes from; the fractions sum to 1."""

    fraction_rollout_goal: float = 0.2
    """Keep the goal the episode was collected with."""
    fraction_prior_goal: float = 0.5
    """Imagine a goal with prior_goal_sampler (RIG: the VAE prior N(0, I))."""
    fraction_future_goal: float = 0.3
    """Use a goal achieved in the same episode at or after the sampled step."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value >= 0.0:
                raise ValueError(f'{name} must be >= 0, got {value}')
        total = sum(vars(self).values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f'relabel fractions must sum to 1, got {total}')


class GoalReplayBuffer:
    """Ring buffer of goal-conditioned episodes with relabeling in sample().

    Storage is by frame: an episode of T steps fills T + 1 consecutive slots (its observations,
    achieved goals and optional uint8 images) and transition t reads slots t and t + 1, so each
    latent and image is stored once. capacity counts frames. Slot i also holds the action and
    rollout goal of the transition leaving frame i.

    Call add_step() for each step (its obs must be the previous step's next_obs) and
    end_episode() (or episode_end=True) when the episode stops; the next add_step() starts a
    new episode. Overwritten frames are gone for good: a future goal is always drawn from the
    same episode, at or after the sampled step and no later than its newest written step.
    Rewards are not stored; sample() computes them for every transition with reward_fn.
    """

    def __init__(self, *, capacity: int, obs_dim: int, goal_dim: int, action_dim: int,
                 reward_fn: RewardFn, prior_goal_sampler: GoalSampler | None,
                 relabel: RelabelConfig | None = None,
                 image_shape: tuple[int, ...] | None = None,
                 rng: np.random.Generator | int | None = None) -> None:
        """Allocate storage; prior_goal_sampler(n) -> (n, goal_dim) may be None if unused."""
        if capacity < 2:
            raise ValueError(f'capacity must be >= 2 frames, got {capacity}')
        self.relabel = relabel or RelabelConfig()
        if prior_goal_sampler is None and self.relabel.fraction_prior_goal > 0:
            raise ValueError('prior_goal_sampler is required when fraction_prior_goal > 0')
        self.capacity = capacity
        self.obs_dim, self.goal_dim, self.action_dim = obs_dim, goal_dim, action_dim
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.reward_fn = reward_fn
        self.prior_goal_sampler = prior_goal_sampler
        self._rng = np.random.default_rng(rng)
        self._obs = np.zeros((capacity, obs_dim), np.float32)
        self._achieved = np.zeros((capacity, goal_dim), np.float32)
        self._action = np.zeros((capacity, action_dim), np.float32)
        self._goal = np.zeros((capacity, goal_dim), np.float32)
        self._images = (np.zeros((capacity, *self.image_shape), np.uint8)
                        if self.image_shape is not None else None)
        # Where the hand was at each frame (NaN: unknown): frames' goals in a hand box.
        self._hands = np.full((capacity, HAND_SIZE), np.nan, np.float32)
        # Absolute frame numbers: an episode's frames are consecutive, so a future frame is
        # any number between the sampled frame + 1 and the episode's last frame.
        self._frame_number = np.full(capacity, -1, np.int64)
        self._episode_last = np.full(capacity, -1, np.int64)  # -1: episode still open
        self._has_next = np.zeros(capacity, bool)
        self._frames = 0
        self._episodes = 0
        self._transitions = 0
        self._episode_open = False
        self._episode_start = 0
        self._achieved_is_obs = True
        self._check_continuity = True
        self.latent_refreshes = 0  # re-encodings so far: readers of latents() refit after one

    def __len__(self) -> int:
        """Return the number of stored transitions."""
        return self._transitions

    @property
    def num_episodes(self) -> int:
        """Episodes begun since the buffer was created (overwritten ones included)."""
        return self._episodes

    @property
    def episode_open(self) -> bool:
        """Whether an episode is being written (end_episode() not yet called)."""
        return self._episode_open

    def add_step(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray,
                 goal: np.ndarray, achieved_goal: np.ndarray | None = None,
                 image: np.ndarray | None = None, next_image: np.ndarray | None = None,
                 episode_end: bool = False, hand: np.ndarray | None = None,
                 next_hand: np.ndarray | None = None) -> None:
        """Store one transition of the open episode, opening a new one if needed.

        achieved_goal is the goal reached at next_obs (default next_obs itself; the oracle
        passes a state subset). With image storage, next_image is required at every step and
        image (of obs) at an episode's first step only. hand / next_hand: the hand position
        (x, y, z) at obs / next_obs (hand read at an episode's first step only; None or
        non-finite: unknown).
        """
        if self._images is None:
            if image is not None or next_image is not None:
                raise ValueError('images given but the buffer was built without image_shape')
        else:
            self._check_image(next_image, 'next_image')
            if not self._episode_open:
                self._check_image(image, 'image')
        if achieved_goal is None:
            if self.goal_dim != self.obs_dim:
                raise ValueError('achieved_goal is required when goal_dim != obs_dim')
        else:
            achieved_goal = self._vector(achieved_goal, self.goal_dim, 'achieved_goal')
        # Check every shape before writing anything.
        obs = self._vector(obs, self.obs_dim, 'obs')
        next_obs = self._vector(next_obs, self.obs_dim, 'next_obs')
        action = self._vector(action, self.action_dim, 'action')
        goal = self._vector(goal, self.goal_dim, 'goal')
        if not self._episode_open:
            self._episode_start = self._frames
            self._episodes += 1
            self._episode_open = True
            # The first frame's achieved goal is never a future goal; obs stands in for it.
            self._write_frame(obs, obs if achieved_goal is None else np.nan, image, hand)
        elif self._check_continuity:
            newest = self._obs[(self._frames - 1) % self.capacity]
            if not np.allclose(newest, obs, rtol=1e-5, atol=1e-6):
                raise ValueError('obs differs from the previous next_obs: call end_episode() '
                                 'between episodes')
        self._check_continuity = True
        if achieved_goal is not None:
            self._achieved_is_obs = False
        previous = (self._frames - 1) % self.capacity
        self._action[previous] = action
        self._goal[previous] = goal
        self._write_frame(next_obs, next_obs if achieved_goal is None else achieved_goal,
                          next_image, next_hand)
        self._has_next[previous] = True
        self._transitions += 1
        if episode_end:
            self.end_episode()

    def end_episode(self) -> None:
        """Close the open episode (a no-op when none is open)."""
        if not self._episode_open:
            return
        first_live = max(self._episode_start, self._frames - self.capacity)
        slots = np.arange(first_live, self._frames) % self.capacity
        self._episode_last[slots] = self._frames - 1
        self._episode_open = False

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Sample transitions uniformly, relabel their goals and compute their rewards.

        Returns float32 tensors obs, action, next_obs, goal, reward (batch_size,) and
        achieved_goal (reached at next_obs), plus int64 goal_source (ROLLOUT_GOAL, PRIOR_GOAL
        or FUTURE_GOAL), index (slot of the transition) and future_index (slot of the
        transition whose achieved goal was used, -1 unless FUTURE_GOAL).
        """
        if self._transitions == 0:
            raise ValueError('cannot sample from an empty buffer')
        rng = self._rng
        live = min(self._frames, self.capacity)
        index = rng.integers(live, size=batch_size)
        # Episodes' last frames start no transition; at most about half the slots are such.
        invalid = ~self._has_next[index]
        while invalid.any():
            index[invalid] = rng.integers(live, size=int(invalid.sum()))
            invalid = ~self._has_next[index]
        next_index = (index + 1) % self.capacity

        relabel = self.relabel
        thresholds = np.cumsum([relabel.fraction_rollout_goal, relabel.fraction_prior_goal])
        source = np.searchsorted(thresholds, rng.random(batch_size), side='right')
        goal = self._goal[index]
        prior = source == PRIOR_GOAL
        if prior.any():
            goal[prior] = self.prior_goal_sampler(int(prior.sum()))
        future = source == FUTURE_GOAL
        frame = self._frame_number[index]
        last = self._episode_last[index]
        last = np.where(last < 0, self._frames - 1, last)
        future_frame = frame + 1 + (rng.random(batch_size) * (last - frame)).astype(np.int64)
        goal[future] = self._achieved[future_frame[future] % self.capacity]

        achieved = self._achieved[next_index]
        reward = np.asarray(self.reward_fn(achieved, goal), np.float32).reshape(batch_size)
        future_index = np.where(future, (future_frame - 1) % self.capacity, -1)
        return {
            'obs': torch.from_numpy(self._obs[index]),
            'action': torch.from_numpy(self._action[index]),
            'next_obs': torch.from_numpy(self._obs[next_index]),
            'goal': torch.from_numpy(goal),
            'reward': torch.from_numpy(reward),
            'achieved_goal': torch.from_numpy(achieved),
            'goal_source': torch.from_numpy(source.astype(np.int64)),
            'index': torch.from_numpy(index),
            'future_index': torch.from_numpy(future_index),
        }

    def images(self) -> np.ndarray:
        """Return the stored uint8 frames (N, H, W, 3) as a read-only view."""
        if self._images is None:
            raise ValueError('the buffer was built without image_shape')
        view = self._images[:min(self._frames, self.capacity)]
        view.flags.writeable = False
        return view

    def latents(self) -> np.ndarray:
        """Return the stored frames' observations (N, obs_dim) as a read-only view."""
        view = self._obs[:min(self._frames, self.capacity)]
        view.flags.writeable = False
        return view

    def hands(self) -> np.ndarray:
        """Return the hand position at each stored frame (N, 3), NaN where unknown, read-only."""
        view = self._hands[:min(self._frames, self.capacity)]
        view.flags.writeable = False
        return view

    def refresh_latents(self, encode_fn: Callable[[np.ndarray], np.ndarray],
                        chunk_size: int = 512) -> None:
        """Re-encode every stored image (uint8 NHWC -> (N, obs_dim)) after the VAE changed.

        Observations are replaced, and achieved goals too unless they were given explicitly.
        Rollout goals are kept: imagined goals have no image. An open episode may go on.
        """
        if self._images is None:
            raise ValueError('refresh_latents needs a buffer built with image_shape')
        live = min(self._frames, self.capacity)
        for start in range(0, live, chunk_size):
            chunk = slice(start, min(start + chunk_size, live))
            self._obs[chunk] = encode_fn(self._images[chunk])
        if self._achieved_is_obs:
            self._achieved[:live] = self._obs[:live]
        # The collector's next obs still comes from the old encoder.
        self._check_continuity = False
        self.latent_refreshes += 1

    def export(self) -> dict[str, np.ndarray | int]:
        """Return the whole state as numpy arrays and ints (for non-pickle persistence)."""
        arrays = {'obs': self._obs, 'achieved_goal': self._achieved, 'action': self._action,
                  'goal': self._goal, 'frame_number': self._frame_number,
                  'episode_last': self._episode_last, 'has_next': self._has_next,
                  'hands': self._hands}
        if self._images is not None:
            arrays['images'] = self._images
        state: dict[str, np.ndarray | int] = {key: value.copy() for key, value in arrays.items()}
        state.update(frames=self._frames, episodes=self._episodes,
                     transitions=self._transitions, episode_open=int(self._episode_open),
                     episode_start=self._episode_start,
                     achieved_is_obs=int(self._achieved_is_obs))
        return state

    @classmethod
    def restore(cls, state: Mapping[str, np.ndarray | int], *, reward_fn: RewardFn,
                prior_goal_sampler: GoalSampler | None,
                relabel: RelabelConfig | None = None,
                rng: np.random.Generator | int | None = None) -> 'GoalReplayBuffer':
        """Rebuild a buffer from export(); an open episode stays open (end it on resume)."""
        obs, achieved, action = state['obs'], state['achieved_goal'], state['action']
        images = state.get('images')
        buffer = cls(capacity=obs.shape[0], obs_dim=obs.shape[1], goal_dim=achieved.shape[1],
                     action_dim=action.shape[1], reward_fn=reward_fn,
                     prior_goal_sampler=prior_goal_sampler, relabel=relabel,
                     image_shape=images.shape[1:] if images is not None else None, rng=rng)
        buffer._obs[:] = obs
        buffer._achieved[:] = achieved
        buffer._action[:] = action
        buffer._goal[:] = state['goal']
        buffer._frame_number[:] = state['frame_number']
        buffer._episode_last[:] = state['episode_last']
        buffer._has_next[:] = state['has_next']
        if 'hands' in state:  # replays saved before hands were kept: unknown
            buffer._hands[:] = state['hands']
        if images is not None:
            buffer._images[:] = images
        buffer._frames = int(state['frames'])
        buffer._episodes = int(state['episodes'])
        buffer._transitions = int(state['transitions'])
        buffer._episode_open = bool(state['episode_open'])
        buffer._episode_start = int(state['episode_start'])
        buffer._achieved_is_obs = bool(state['achieved_is_obs'])
        return buffer

    def _write_frame(self, obs: np.ndarray, achieved: np.ndarray | float,
                     image: np.ndarray | None, hand: np.ndarray | None = None) -> None:
        slot = self._frames % self.capacity
        self._hands[slot] = np.nan
        if hand is not None:
            hand = np.asarray(hand, np.float32).ravel()
            if hand.size == HAND_SIZE:
                self._hands[slot] = hand
        if self._images is not None:
            self._images[slot] = image
        if self._has_next[slot]:  # overwriting the oldest frame drops its transition
            self._has_next[slot] = False
            self._transitions -= 1
        self._obs[slot] = obs
        self._achieved[slot] = achieved
        self._frame_number[slot] = self._frames
        self._episode_last[slot] = -1
        self._frames += 1

    def _check_image(self, image: np.ndarray | None, name: str) -> None:
        if image is None or image.shape != self.image_shape or image.dtype != np.uint8:
            raise ValueError(f'{name} must be a uint8 array of shape {self.image_shape}')

    @staticmethod
    def _vector(value: np.ndarray, size: int, name: str) -> np.ndarray:
        vector = np.asarray(value, np.float32)
        if vector.shape != (size,):
            raise ValueError(f'{name} must have shape ({size},), got {vector.shape}')
        return vector
