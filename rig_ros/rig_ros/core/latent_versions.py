"""Which VAE made the replay's latents: the version guard, exploration into replay, fine-tuning.

Latents compare only when one VAE made them: a transition from a version-1 latent to a
version-2 latent teaches a step that never happened, and a reward between latents of two
versions means nothing. So every latent in the replay is of one version,
`LatentVersions.current`, and:
- the exploration episodes enter the replay encoded by the VAE of that version, with an
  imagined goal each (a prior sample; relabelling does the rest): `add_exploration`;
- a fine-tuning round (`VersionedFineTuning`, the trainer's VAE stage) trains the VAE,
  re-encodes every frame of the replay and only then advances the version (and writes the
  new weights), so the replay never holds two versions;
- an arriving transition is checked against it (`LatentVersions.check`): 'ok' when its latents
  are of the current version, else refused as 'mixed' (its two latents are of two versions:
  the encoder switched between them), 'stale' (an older version: made before the encoders
  had the new weights) or 'ahead' (a newer version than the replay's).

How the graph's learner (`core.practice_run.PracticeRun`) uses it:
1. A transition says which VAE version made each of its latents (rig_msgs/Transition
   `vae_version`, `next_vae_version`: the policy's LatentState.model_version of each).
2. Ingestion refuses what `check` does not call 'ok', counting the verdicts, in the same
   hold of the ingestion lock as storing. The next step of that robot then arrives after a
   missing one: the learner's 'gap' rule cuts the episode there, so the parts on each side
   are stored separately.
3. A fine-tuning round: `train` on a copy of the replay's images outside the lock; then,
   holding it, store the robots' unfinished episodes (their latents are of the current
   version, so the refresh re-encodes them too), `refresh` (re-encode, advance the version,
   write the weights), record the new version (`Lifecycle.set_vae_version`); the host then
   broadcasts the weights. Transitions of the old version arriving after that are 'stale'.
4. On resume the VAE file's version is the truth: a replay that keeps images is re-encoded
   with it (`GoalReplayBuffer.refresh_latents`) and the guard starts there.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from rig_ros.core.frames import FrameEpisode
from rig_ros.core.replay import GoalReplayBuffer, GoalSampler
from rig_ros.core.trainer import RigTrainer, VAEFineTuning
from rig_ros.core.vae import ConvVAE, encode_images
from rig_ros.core.vae_training import vae_input, write_vae_checkpoint

VERDICTS = ('ok', 'mixed', 'stale', 'ahead')


class LatentVersions:
    """The VAE version of the replay's latents and the check of arriving latents."""

    def __init__(self, current: int = 0) -> None:
        self.current = int(current)
        """Version of every latent in the replay (0: no VAE yet)."""

    def check(self, version: int, next_version: Optional[int] = None) -> str:
        """Return 'ok' or why latents of these versions may not join the replay (VERDICTS).

        version: of the transition's observation; next_version: of its next observation
        (None: the same).
        """
        next_version = version if next_version is None else next_version
        if version != next_version:
            return 'mixed'
        if version < self.current:
            return 'stale'
        return 'ahead' if version > self.current else 'ok'

    def current_runs(self, versions: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """Return the [start, stop) runs of consecutive steps whose latents are all 'ok'.

        versions: per step, the versions of its observation and next observation. Each run is
        stored as an episode part of its own; the other steps are refused.
        """
        runs, start = [], None
        for index, (version, next_version) in enumerate(versions):
            ok = self.check(version, next_version) == 'ok'
            if ok and start is None:
                start = index
            elif not ok and start is not None:
                runs.append((start, index))
                start = None
        if start is not None:
            runs.append((start, len(versions)))
        return runs

    def adopt(self, version: int) -> None:
        """Record that the replay's latents are of `version` (seeded, or re-encoded on resume)."""
        self.current = int(version)

    def advance(self) -> int:
        """Move to the next version (the replay was re-encoded by it); return it."""
        self.current += 1
        return self.current


def add_exploration(trainer: RigTrainer, episodes: Iterable[FrameEpisode], vae: ConvVAE,
                    version: int, versions: LatentVersions, *,
                    goal_sampler: Optional[GoalSampler] = None) -> int:
    """Encode exploration episodes with `vae` (of `version`) into the trainer's replay.

    Each episode becomes one episode of transitions (latent means, its actions, its hands)
    with one imagined goal drawn from `goal_sampler` (default: the trainer's prior); a replay
    that keeps images gets the frames too (at the VAE's input size). Records `version` in
    `versions`; returns the transitions added. Raises ValueError when the replay already
    holds latents of another version, or keeps images of another size.
    """
    buffer: GoalReplayBuffer = trainer.buffer
    if len(buffer) and versions.current != version:
        raise ValueError(f'the replay holds latents of VAE version {versions.current}; '
                         f'exploration encoded by version {version} would mix them')
    sampler = goal_sampler or trainer.prior_goal_sampler
    if sampler is None:
        raise ValueError('no goal sampler: give goal_sampler or build the trainer with a prior')
    size = vae.config.image_size
    keep_images = buffer.image_shape is not None
    if keep_images and buffer.image_shape != (size, size, 3):
        raise ValueError(f'the replay keeps images of shape {buffer.image_shape}, the VAE '
                         f'takes {size}x{size}')
    trainer.end_episode()
    added = 0
    for episode in episodes:
        frames = vae_input(episode.frames, size)
        latents = encode_images(vae, frames)[0]
        goal = np.asarray(sampler(1), np.float32)[0]
        last = len(episode.actions) - 1
        hands = episode.hands
        for t, action in enumerate(episode.actions):
            trainer.add_step(latents[t], action, latents[t + 1], goal,
                             image=frames[t] if keep_images else None,
                             next_image=frames[t + 1] if keep_images else None,
                             episode_end=t == last,
                             hand=hands[t] if hands is not None else None,
                             next_hand=hands[t + 1] if hands is not None else None)
        added += len(episode.actions)
    versions.adopt(version)
    return added


class VersionedFineTuning:
    """`core.trainer.VAEFineTuning` giving every round a new VAE version (a `VAEStage`).

    A round fine-tunes the VAE on the replay's images and re-encodes them (VAEFineTuning),
    then advances `versions` and, with `vae_file`, writes the new weights there with that
    version and `metadata` (e.g. the pretrained latent variance), as the nodes load them.
    The round's metrics gain 'vae_version'.
    """

    def __init__(self, fine_tuning: VAEFineTuning, versions: LatentVersions,
                 vae_file: Optional[str | os.PathLike] = None,
                 metadata: Optional[Mapping[str, Any]] = None) -> None:
        self.fine_tuning = fine_tuning
        self.versions = versions
        self.vae_file = vae_file
        self.metadata = dict(metadata or {})

    @property
    def vae(self) -> ConvVAE:
        """The VAE being fine-tuned (in place)."""
        return self.fine_tuning.vae

    def due(self, stored: int, last_run: int) -> bool:
        """Whether a round is due, on the schedule of the wrapped fine-tuning."""
        return self.fine_tuning.due(stored, last_run)

    def run(self, buffer: GoalReplayBuffer) -> Mapping[str, float]:
        """Fine-tune and re-encode the replay, then advance the version; return the metrics."""
        metrics = dict(self.train(buffer.images().copy()))
        version = self.refresh(buffer)
        return {**metrics, 'vae_version': float(version)}

    def train(self, images: np.ndarray) -> Mapping[str, float]:
        """Fine-tune on a copy of the replay's images (outside the host's lock)."""
        return self.fine_tuning.train(images)

    def refresh(self, buffer: GoalReplayBuffer) -> int:
        """Re-encode the replay, advance the version, write the VAE file; return the version.

        The host holds its ingestion lock (transitions of the old version after this are
        'stale').
        """
        self.fine_tuning.refresh(buffer)
        version = self.versions.advance()
        if self.vae_file is not None:
            write_vae_checkpoint(self.vae_file, self.vae, version, self.metadata)
        return version
