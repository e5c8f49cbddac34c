"""The RIG trainer both hosts share: replay, latent reward, update schedule, TD3, a VAE seam.

The in-process pipeline (`core.pipeline`, one simulated robot, step by step) and the graph's
learner (`core.learner`, whole episodes from a fleet) differ in where transitions come from.
What they do with them is this class: store them in a `GoalReplayBuffer` (relabelling with
rollout, imagined and future goals, rewarding with the Euclidean or Mahalanobis latent
distance), and pay the TD3 updates that `UpdateSchedule` says the stored transitions owe:
once `learning_starts` transitions are stored, `updates_per_step` updates per transition.

The VAE seam: a `VAEStage` given to the trainer runs between updates when its `due()` says so,
on the replay buffer (its images, its latents). The pipeline's online fine-tuning
(`VAEFineTuning`: train on the replay's images, then re-encode them) plugs in there. The
graph's learner (`core.practice_run`) runs the two halves itself (`train` outside its
ingestion lock, `refresh` inside), so that no transition of the old VAE joins a re-encoded
replay; its VAE pretraining is `core.vae_training`. Training-image augmentation is part
of the `VAEConfig` a stage is given (`VAEConfig.augmentation`, applied by `VAETrainer`), so a
stage trains with it by config, whichever host runs the stage.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Mapping, Optional, Protocol

import numpy as np
import torch

from rig_ros.core.actor import GoalPolicy
from rig_ros.core.hands import HandBox
from rig_ros.core.noise import ExplorationConfig
from rig_ros.core.replay import GoalReplayBuffer, GoalSampler, RelabelConfig
from rig_ros.core.rewards import latent_reward_fn, LatentDistance
from rig_ros.core.td3 import GoalConditionedTD3, TD3Config
from rig_ros.core.vae import ConvVAE, encode_images, VAEConfig, VAETrainer

OPTIMIZERS = ('actor_optimizer', 'critic_optimizer')  # of GoalConditionedTD3.state_dict()


class VAEStage(Protocol):
    """VAE training the trainer runs on its replay buffer between TD3 updates."""

    def due(self, stored: int, last_run: int) -> bool:
        """Whether to run now: `stored` transitions stored, `last_run` stored at the last run."""
        ...

    def run(self, buffer: GoalReplayBuffer) -> Mapping[str, float]:
        """Train on the buffer's images and re-encode its latents; return the last metrics."""
        ...


def check_fine_tune_schedule(every: int, until: int) -> None:
    """Refuse an end to fine-tuning rounds that never start (`until` without `every`)."""
    if until and not every:
        raise ValueError(f'fine_tune_vae_until ({until}) needs fine_tune_vae_every > 0: '
                         'without rounds there is nothing to stop')


class VAEFineTuning:
    """RIG's online VAE training: fine-tune on the replay's images, then refresh its latents.

    Runs every `every` stored transitions (0: never) up to `until` of them (0: no end),
    `steps` minibatches each time, with the training-image augmentation of `config`
    (`VAEConfig.augmentation`). The VAE is trained in place, so everything holding it (the
    pipeline's observer) encodes with the new weights afterwards.
    """

    def __init__(self, vae: ConvVAE, config: VAEConfig, every: int, steps: int,
                 until: int = 0) -> None:
        self.vae = vae
        self.config = config
        self.every = every
        self.steps = steps
        self.until = until

    def due(self, stored: int, last_run: int) -> bool:
        """Whether a multiple of `every` (at most `until`) was passed since the last run."""
        if self.every <= 0:
            return False
        passed = stored // self.every
        if self.until > 0:  # the last round is at the last multiple within `until`
            passed = min(passed, self.until // self.every)
        return passed > last_run // self.every

    def run(self, buffer: GoalReplayBuffer) -> Mapping[str, float]:
        """Fine-tune on the buffer's images, then re-encode them (`train`, then `refresh`)."""
        metrics = self.train(buffer.images().copy())  # a writable copy for torch
        self.refresh(buffer)
        return metrics

    def train(self, images: np.ndarray) -> Mapping[str, float]:
        """Fine-tune on `images` (uint8 NHWC at the VAE's size); return the last metrics.

        A host whose replay others write to copies the images holding its lock and trains
        outside it (the graph's learner); the VAE then encodes with the new weights, so
        `refresh` must follow before its latents are compared with the replay's again.
        """
        history = VAETrainer(self.vae, self.config).fit(images, self.steps, progress=False)
        self.vae.eval()
        return history[-1] if history else {}

    def refresh(self, buffer: GoalReplayBuffer) -> None:
        """Re-encode every latent of the buffer with the (fine-tuned) VAE."""
        buffer.refresh_latents(lambda batch: encode_images(self.vae, batch)[0])


def latent_prior(rng: np.random.Generator, latent_dim: int) -> GoalSampler:
    """Return a sampler of imagined goals z ~ N(0, I) (the VAE prior) drawing from `rng`."""
    def sample(count: int) -> np.ndarray:
        return rng.standard_normal((count, latent_dim)).astype(np.float32)
    return sample


def replay_latent_goals(buffer: Callable[[], GoalReplayBuffer], fallback: GoalSampler,
                        rng: np.random.Generator,
                        hand_box: Optional[HandBox] = None) -> GoalSampler:
    """Return a sampler of imagined goals drawn uniformly from the replay's stored latents.

    `buffer()` gives the replay at each draw (it may be built after the sampler); while it
    holds no latent to draw, `fallback` draws. hand_box: only latents of frames taken with
    the hand in the box (`GoalReplayBuffer.hands`; which frames those are is looked up again
    every HAND_BOX_RECHECK transitions). The graph learner's 'frames' goals, and the
    pipeline's with `frame_goals_from_replay`.
    """
    slots = HandBoxSlots(hand_box)

    def sample(count: int) -> np.ndarray:
        replay = buffer()
        stored = replay.latents()
        if hand_box is not None:
            stored = stored[slots(replay)]
        if not len(stored):
            return fallback(count)
        return stored[rng.integers(len(stored), size=count)].astype(np.float32)
    return sample


HAND_BOX_RECHECK = 50
"""Transitions stored between two looks at which replay frames had the hand in the box."""


class HandBoxSlots:
    """The replay slots whose frames were taken with the hand in a box, kept between draws.

    Looked up again when the replay is another one, HAND_BOX_RECHECK more transitions are
    stored (a slot overwritten in between keeps its old verdict until then), or none was
    found and a transition came since: never per draw, as draws come once per TD3 update.
    """

    def __init__(self, hand_box: Optional[HandBox]) -> None:
        self.hand_box = hand_box
        self._replay: Optional[GoalReplayBuffer] = None
        self._size = 0
        self._slots = np.zeros(0, np.int64)

    def __call__(self, replay: GoalReplayBuffer) -> np.ndarray:
        """Return the slots (indices into `replay.latents()`) that may give goals."""
        if self.hand_box is None:
            return np.arange(len(replay.latents()))
        if (replay is not self._replay or abs(len(replay) - self._size) >= HAND_BOX_RECHECK
                or (not len(self._slots) and len(replay) != self._size)):
            self._replay, self._size = replay, len(replay)
            self._slots = np.flatnonzero(self.hand_box.inside(replay.hands()))
        return self._slots


def _variance_pending(achieved: np.ndarray, goal: np.ndarray) -> np.ndarray:
    raise RuntimeError("the 'mahalanobis' reward has no latent variance yet: it comes with the "
                       "run's VAE (RigTrainer.set_latent_variance)")


class RigTrainer:
    """Replay, reward, update schedule and TD3 of one RIG run (see the module doc).

    obs_dim, goal_dim, action_dim: sizes of observations (latents), goals and actions.
    td3: the TD3 algorithm (`td3.algorithm`) and the update schedule (`td3.schedule`).
    relabel: where sampled transitions' goals come from.
    replay_capacity: replay size in frames (an episode of T steps takes T + 1).
    prior_goal_sampler: imagined goals for relabelling, sampler(n) -> (n, goal_dim).
    reward: 'euclidean' or 'mahalanobis' (then `latent_variance`, the encoder's posterior
        variance per latent axis, is required).
    latent_distance: with 'euclidean', the reward's distance between latents instead of the
        straight line (`rewards.PositionProbe.distance`); None: the straight line.
    image_shape: store each frame's image (uint8) for VAE training and latent refreshes.
    seed: seeds the networks, the target policy noise and replay sampling.
    device: torch device of the networks.
    vae_stage: VAE training run on the replay between updates (None: a frozen VAE).
    """

    def __init__(self, *, obs_dim: int, goal_dim: int, action_dim: int, td3: TD3Config,
                 relabel: RelabelConfig, replay_capacity: int,
                 prior_goal_sampler: Optional[GoalSampler], reward: str = 'euclidean',
                 latent_variance: Optional[np.ndarray] = None,
                 latent_distance: Optional[LatentDistance] = None,
                 image_shape: Optional[tuple[int, ...]] = None, seed: int = 0,
                 device: str | torch.device = 'cpu',
                 vae_stage: Optional[VAEStage] = None) -> None:
        self.schedule = td3.schedule
        self.relabel = relabel
        self.seed = seed
        self.reward_kind = reward
        # 'mahalanobis' may wait for its variance: a run that pretrains its own VAE gets it then.
        self.reward_fn = (_variance_pending if reward == 'mahalanobis' and latent_variance is None
                          else latent_reward_fn(reward, latent_variance, latent_distance))
        self.prior_goal_sampler = prior_goal_sampler
        self.agent = GoalConditionedTD3(obs_dim, goal_dim, action_dim, td3.algorithm, device,
                                        seed=seed)
        self.buffer = GoalReplayBuffer(
            capacity=replay_capacity, obs_dim=obs_dim, goal_dim=goal_dim,
            action_dim=action_dim, reward_fn=self.reward_fn,
            prior_goal_sampler=prior_goal_sampler, relabel=relabel, image_shape=image_shape,
            rng=seed)
        self.vae_stage = vae_stage
        self.stored = 0  # transitions stored, resumed ones included: what updates are owed for
        self.last_metrics: dict[str, float] = {}  # of the latest TD3 update
        self._vae_stage_at = 0  # `stored` at the VAE stage's last run

    def set_latent_variance(self, variance: np.ndarray) -> None:
        """Give the 'mahalanobis' reward the encoder variance of the VAE now in use.

        Nothing changes for 'euclidean'. Raises ValueError for a non-positive variance.
        """
        if self.reward_kind != 'mahalanobis':
            return
        self.reward_fn = latent_reward_fn('mahalanobis', variance)
        self.buffer.reward_fn = self.reward_fn

    # Transitions.

    def add_step(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray,
                 goal: np.ndarray, *, image: Optional[np.ndarray] = None,
                 next_image: Optional[np.ndarray] = None, episode_end: bool = False,
                 hand: Optional[np.ndarray] = None,
                 next_hand: Optional[np.ndarray] = None) -> None:
        """Store one transition (see GoalReplayBuffer.add_step)."""
        self.buffer.add_step(obs, action, next_obs, goal, image=image, next_image=next_image,
                             episode_end=episode_end, hand=hand, next_hand=next_hand)
        self.stored += 1

    def end_episode(self) -> None:
        """Close the open episode of the replay buffer."""
        self.buffer.end_episode()

    def restore_replay(self, state: Mapping[str, Any], stored: int) -> None:
        """Replace the replay with an exported one holding `stored` transitions in all.

        An episode the interruption cut is closed. Raises what GoalReplayBuffer.restore
        raises for a state that is not a replay buffer.
        """
        self.buffer = GoalReplayBuffer.restore(
            state, reward_fn=self.reward_fn, prior_goal_sampler=self.prior_goal_sampler,
            relabel=self.relabel, rng=self.seed)
        self.buffer.end_episode()
        self.stored = self._vae_stage_at = int(stored)

    # Updates.

    @property
    def updates(self) -> int:
        """TD3 updates done (resumed runs included)."""
        return self.agent.updates

    def updates_due(self) -> int:
        """Return the updates owed for the transitions stored so far (done ones included)."""
        return self.schedule.updates_due(self.stored)

    def learning(self) -> bool:
        """Whether learning has started (before it the pipeline acts at random)."""
        return self.stored >= self.schedule.learning_starts

    def train(self, max_updates: Optional[int] = None, *,
              lock: Optional[ContextManager[Any]] = None,
              stop: Optional[Callable[[], bool]] = None) -> int:
        """Pay up to `max_updates` (None: all) of the owed updates; return how many ran.

        Batches are sampled holding `lock` (shared with whoever stores transitions), updates
        run without it. `stop()` is asked after each update and ends the call early when true.
        """
        lock = lock if lock is not None else contextlib.nullcontext()
        done = 0
        while max_updates is None or done < max_updates:
            with lock:
                if self.updates >= self.updates_due() or len(self.buffer) == 0:
                    break
                batch = self.buffer.sample(self.schedule.batch_size)
            self.last_metrics = self.agent.update(batch)
            done += 1
            if stop is not None and stop():
                break
        return done

    def run_vae_stage(self) -> Optional[Mapping[str, float]]:
        """Run the VAE stage if it is due; return its metrics (None when it did not run)."""
        if self.vae_stage is None or not self.vae_stage.due(self.stored, self._vae_stage_at):
            return None
        metrics = self.vae_stage.run(self.buffer)
        self._vae_stage_at = self.stored
        return metrics

    def acting_policy(self, exploration: Optional[ExplorationConfig] = None) -> GoalPolicy:
        """Return a policy acting with the live actor (exploration noise seeded by seed)."""
        return GoalPolicy(self.agent.actor, exploration, seed=self.seed)

    # Checkpoints.

    def network_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return the agent's (modules, optimizers) state dicts, as save_checkpoint takes them."""
        modules = self.agent.state_dict()
        del modules['updates']
        optimizers = {name: modules.pop(name) for name in OPTIMIZERS}
        return modules, optimizers

    def load_network_state(self, modules: Mapping[str, Any], optimizers: Mapping[str, Any],
                           updates: int) -> None:
        """Restore what network_state() returned and the update count."""
        self.agent.load_state_dict({**modules, **optimizers, 'updates': int(updates)})
