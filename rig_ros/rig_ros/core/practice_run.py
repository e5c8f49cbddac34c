"""A practice run of the graph's learner: explore -> pretrain -> practise, resumable.

`PracticeRun` owns what the learner node drives (the node only converts messages and
publishes what `work()` reports):
- `core.learner.Learner`: ingestion of practice transitions, TD3, policy weights, the
  learner's checkpoint and episode files;
- `core.lifecycle.Lifecycle`: the stage and `stage.json`;
- `core.frames.FrameStore`: the exploration frames (`run_dir/frames`);
- `core.vae_training.VAEPretraining`: the pretrain stage (`vae_pretrain.safetensors`), which
  ends by writing `vae.safetensors` (version 1);
- in practice the VAE, `core.latent_versions.LatentVersions` (the version of the replay's
  latents) and, with `fine_tune_vae_every`, `VersionedFineTuning` rounds.

Ingestion (`ingest`, any thread) returns a verdict:
- explore: an exploration transition (vae_version 0, empty latents) with its frame is kept:
  the frame and its action, and at the episode's last step also the next frame ('frame').
  One without a usable frame or action is 'invalid'; a practice transition is refused as
  'not_exploring'.
- pretrain: everything is refused: 'exploring' (an exploration transition) or 'pretraining'.
- practise: an exploration transition is refused as 'exploring'. A practice transition's
  VAE versions must be those of the replay (`LatentVersions.check`: 'mixed', 'stale',
  'ahead' are refused); an unversioned one (versions 0 with latents: older publishers) is
  accepted while the replay's version is <= 1. The check and the storing are one hold of the
  ingestion lock, so no transition of an old VAE joins a re-encoded replay. Then the
  learner's rules (`core.learner`: gap, discontinuity, ...).
Every refusal is counted in `status()`.

`work()` (one thread, in a loop) does a bounded piece of the current stage and returns what
happened (`Work.events`) for the host to publish:
- explore: writes waiting frames when due; once `explore_frames` are kept, flushes them and
  moves to pretrain ('stage').
- pretrain: `PRETRAIN_CHUNK` VAE steps ('pretrain' metrics), a reconstruction every
  `reconstruction_period_s` ('reconstruction'); when `vae_steps` are done, writes
  `vae.safetensors` and moves to practise ('stage', then 'vae': broadcast it).
- practise: once, seeds the replay with the exploration episodes encoded by the VAE (saved
  with the learner's checkpoint before it is marked done); then pays owed TD3 updates
  ('policy' when a broadcast is due, 'checkpoint' when one was written) and, when due, runs
  a fine-tuning round ('vae' with the new version).

`vae_checkpoint` (non-empty) practises at once with that VAE (its version); no frames are
kept. Without it the run needs a run directory.

Durability (SIGKILL at any point): frames (chunks), pretraining (its checkpoint every
`vae_checkpoint_every` steps), stage.json, episodes and the replay (`core.learner`, with their
frames when fine-tuning) are on disk. `resume()` reads them; in practice a replay keeping
frames is re-encoded with `vae.safetensors` (the truth about the version) so that it never
mixes versions, whatever moment the kill hit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
import pathlib
import threading
import time
from typing import Any, Callable, Literal, Optional

import numpy as np

from rig_ros.core import checkpoints
from rig_ros.core.encoder import LATENT_VARIANCE_KEY, VAE_CHECKPOINT_FILE
from rig_ros.core.files import hold_run_directory
from rig_ros.core.frames import FrameStore, FrameStoreConfig
from rig_ros.core.latent_versions import add_exploration, LatentVersions, VersionedFineTuning
from rig_ros.core.learner import Learner, LearnerConfig, load_latent_variance
from rig_ros.core.lifecycle import Lifecycle, LifecycleConfig
from rig_ros.core.policy_runtime import TransitionRecord
from rig_ros.core.skew_fit import SkewedVAEFineTuning
from rig_ros.core.trainer import VAEFineTuning
from rig_ros.core.vae import ConvVAE, encode_images
from rig_ros.core.vae_training import (
    PRETRAINED_VERSION, read_vae_checkpoint, VAEPretraining, VAEPretrainingConfig)

PRETRAIN_CHUNK = 20  # VAE steps per work() call: progress and reconstructions in between
TRAIN_CHUNK = 16  # TD3 updates per work() call
RECONSTRUCTION_FRAMES = 4  # frames beside their reconstructions in one image
STAGE_REFUSALS = ('not_exploring', 'exploring', 'pretraining')

EventKind = Literal['stage', 'pretrain', 'reconstruction', 'vae', 'policy', 'checkpoint']


@dataclass
class Event:
    """Something for the host to publish or log."""

    kind: EventKind
    text: str = ''
    """In words (for the log)."""
    version: int = 0
    """'vae': the new VAE version."""
    path: str = ''
    """'vae': the VAE file; 'checkpoint': the checkpoint written."""
    image: Optional[np.ndarray] = None
    """'reconstruction': frames beside their reconstructions, uint8 HxWx3."""
    metrics: dict[str, float] = field(default_factory=dict)
    """'pretrain': VAE metrics (loss, recon, kl, holdout_recon, step, ...)."""


@dataclass
class Work:
    """What one work() call did."""

    events: list[Event]
    busy: bool
    """Whether more work is waiting (False: the host may pause before the next call)."""


def is_exploration(record: TransitionRecord) -> bool:
    """Whether a transition is an exploration step (no VAE: version 0, empty latents)."""
    return record.vae_version == 0 and record.observation.size == 0


class PracticeRun:
    """The learner's run and its stages (see the module doc).

    Raises ValueError for a config that cannot run (a training run with neither
    vae_checkpoint nor run_dir, a 'mahalanobis' reward with neither), and RunDirectoryInUse
    (a ValueError) while another process trains in the same run_dir.
    """

    def __init__(self, config: LearnerConfig, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if config.train and not (config.vae_checkpoint or config.run_dir):
            raise ValueError('a run without vae_checkpoint explores and pretrains its VAE in '
                             'run_dir: set run_dir (or vae_checkpoint)')
        self.config = config
        self._clock = clock
        self.run_dir = pathlib.Path(config.run_dir) if config.run_dir else None
        if config.train and self.run_dir is not None:
            hold_run_directory(self.run_dir)  # one learner writes a run directory
        self.learner = Learner(config, clock)
        self.lifecycle: Optional[Lifecycle] = None
        self.frames: Optional[FrameStore] = None
        if config.train:
            self.lifecycle = Lifecycle(self.run_dir, LifecycleConfig(
                config.explore_frames, config.vae_steps, config.vae_checkpoint),
                clock=wall_clock)
            if self.run_dir is not None and not config.vae_checkpoint:
                self.frames = FrameStore(self.run_dir, FrameStoreConfig(
                    config.frame_chunk_frames, config.frame_flush_period_s, config.action_dim),
                    clock=clock)
        self.pretraining: Optional[VAEPretraining] = None
        self.vae: Optional[ConvVAE] = None
        self.vae_file: Optional[pathlib.Path] = None
        self.versions = LatentVersions()
        self.fine_tuning: Optional[VersionedFineTuning] = None
        self._fine_tuned_at = 0  # learner's stored count at the last round (or the start)
        self._stage_lock = threading.Lock()  # stage moves vs. frames kept
        self._refusals = dict.fromkeys(STAGE_REFUSALS, 0)
        self._explore_received = 0
        self._explore_invalid = 0
        self._reconstruction_time: Optional[float] = None
        self._save_due = False  # a fine-tuning round's replay waits to be saved

    @property
    def stage(self) -> str:
        """'explore', 'pretrain', 'practise', or 'serve' (train false)."""
        return self.lifecycle.stage if self.lifecycle is not None else 'serve'

    # Start.

    def resume(self) -> str:
        """Read what run_dir holds and set up the current stage; return it in words.

        Raises CheckpointError (a ValueError) for unreadable or unfitting state, OSError for
        an unusable directory.
        """
        if self.lifecycle is None:
            return 'serving weights, no training'
        parts = [f'run directory {self.run_dir}' if self.run_dir else 'no run directory']
        parts.append(f'stage {self.stage}' + (' (resumed)' if self.lifecycle.resumed else
                                              ' (a new run)'))
        if self.config.skew_fit.enabled:
            skewed = ('VAE batches and ' if self.config.skew_fit.skew_vae else '')
            parts.append(f'Skew-Fit alpha {self.config.skew_fit.alpha:g} ({skewed}'
                         "relabelling's frames' goals skewed)")
        if self.frames is not None:
            kept = self.frames.resume()
            self.lifecycle.update(frames=kept)
            parts.append(f'{kept} exploration frames kept')
            parts += [f'unreadable frame chunk set aside: {skipped}'
                      for skipped in self.frames.skipped_files]
        if self.stage == 'pretrain':
            self._start_pretraining_stage()
            assert self.pretraining is not None
            parts.append(f'VAE pretraining at step {self.pretraining.step}/'
                         f'{self.config.vae_steps}')
        if self.run_dir is not None and self.learner.resume(self.run_dir):
            parts.append(f'{self.learner.counts["stored"]} transitions stored, '
                         f'{self.learner.updates} updates')
        parts += [f'unreadable episode file set aside: {skipped}'
                  for skipped in self.learner.skipped_files]
        if self.run_dir is not None:
            self.learner.record_episodes(self.run_dir)
        if self.stage == 'practise':
            self._start_practice_stage()
            parts.append(f'VAE version {self.versions.current} of {self.vae_file}')
            self._seed_replay()
        return '; '.join(parts)

    def _start_pretraining_stage(self) -> None:
        assert self.frames is not None and self.run_dir is not None
        config = self.config
        self.pretraining = VAEPretraining(
            self.run_dir, self.frames.images(), VAEPretrainingConfig(
                vae=config.vae, checkpoint_every=config.vae_checkpoint_every, seed=config.seed,
                skew_fit=config.skew_fit, steps=config.vae_steps),
            device=config.device)
        assert self.lifecycle is not None
        self.lifecycle.update(vae_step=self.pretraining.step)

    def _start_practice_stage(self) -> None:
        """Load the VAE of the practice (the run's own file, else vae_checkpoint)."""
        config = self.config
        own = self.run_dir / VAE_CHECKPOINT_FILE if self.run_dir is not None else None
        path = own if own is not None and own.is_file() else None
        if path is None:
            if not config.vae_checkpoint:
                raise checkpoints.CheckpointError(
                    f'the run practises but {own} is missing: use another run_dir')
            path = pathlib.Path(config.vae_checkpoint)
        self.vae, version = read_vae_checkpoint(path, config.device)
        if self.vae.config.latent_dim != config.latent_dim:
            raise checkpoints.CheckpointError(
                f'the VAE of {path} has {self.vae.config.latent_dim} latents, the learner '
                f'latent_dim {config.latent_dim}')
        self.vae_file = path if path.is_file() else path / VAE_CHECKPOINT_FILE
        if config.reward == 'mahalanobis':  # the variance of the VAE practised with
            self.learner.trainer.set_latent_variance(
                load_latent_variance(self.vae_file, config.latent_dim))
        assert self.lifecycle is not None
        buffer = self.learner.buffer
        with self.learner.exclusive():
            if buffer.image_shape is not None and len(buffer):
                # The file's version is the truth: the replay may hold latents of the one
                # before (a kill between writing the file and saving the replay).
                buffer.refresh_latents(lambda batch: encode_images(self.vae, batch)[0])
            self.versions.adopt(version)
        if self.lifecycle.vae_version != version:
            self.lifecycle.set_vae_version(version)
        self._fine_tuned_at = self.learner.counts['stored']
        if config.fine_tune_vae_every and own is not None:
            if self.vae.config.image_size != config.vae.image_size:
                raise checkpoints.CheckpointError(
                    f'the VAE of {path} takes {self.vae.config.image_size}x'
                    f'{self.vae.config.image_size} frames, vae.image_size is '
                    f'{config.vae.image_size}')
            metadata = checkpoints.load_checkpoint(self.vae_file).metadata
            kept = {key: metadata[key] for key in (LATENT_VARIANCE_KEY,) if key in metadata}
            # Skewed relabelling goals refit themselves after the replay is re-encoded.
            rounds = (SkewedVAEFineTuning(
                self.vae, config.vae, config.fine_tune_vae_every, config.fine_tune_vae_steps,
                config.skew_fit, None, seed=config.seed, until=config.fine_tune_vae_until)
                if config.skew_fit.enabled else
                VAEFineTuning(self.vae, config.vae, config.fine_tune_vae_every,
                              config.fine_tune_vae_steps, config.fine_tune_vae_until))
            self.fine_tuning = VersionedFineTuning(rounds, self.versions, own, kept)

    def _seed_replay(self) -> None:
        """Encode the exploration into the replay once (lifecycle's replay_seeding_due)."""
        assert self.lifecycle is not None and self.vae is not None
        if not self.lifecycle.replay_seeding_due(self.learner.counts['stored']):
            return
        episodes = self.frames.episodes() if self.frames is not None else []
        with self.learner.exclusive():
            added = add_exploration(self.learner.trainer, episodes, self.vae,
                                    self.versions.current, self.versions)
        self.learner.note_seeded(added)
        if self.run_dir is not None:
            self.learner.save(self.run_dir)
        self.lifecycle.mark_replay_seeded()
        self._fine_tuned_at = self.learner.counts['stored']

    # Ingestion (any thread).

    def ingest(self, robot_id: str, record: TransitionRecord) -> str:
        """Keep or refuse one transition; return the verdict (see the module doc)."""
        if self.lifecycle is None:
            return self.learner.ingest(robot_id, record)
        exploration = is_exploration(record)
        with self._stage_lock:
            stage = self.lifecycle.stage
            if stage == 'explore' and exploration:
                return self._keep_frames(robot_id, record)
        if stage == 'practise' and not exploration:
            return self.learner.ingest(robot_id, record, check=self._version_refusal)
        refusal = ('exploring' if exploration else
                   'not_exploring' if stage == 'explore' else 'pretraining')
        self._refusals[refusal] += 1
        return refusal

    def _keep_frames(self, robot_id: str, record: TransitionRecord) -> str:
        """Keep an exploration step's frame(s) (holding the stage lock)."""
        self._explore_received += 1
        if self.frames is None or record.image is None or (
                record.episode_end and record.next_image is None):
            self._explore_invalid += 1
            return 'invalid'
        try:
            self.frames.append(robot_id, record.episode_id, record.step_index, record.image,
                               record.action, record.hand)
            if record.episode_end:
                self.frames.append(robot_id, record.episode_id, record.step_index + 1,
                                   record.next_image, None, record.next_hand)
        except ValueError:
            self._explore_invalid += 1
            return 'invalid'
        return 'frame'

    def frame_problem(self, record: TransitionRecord) -> str:
        """Return why an exploration step's frames were refused, in words."""
        for name in ('image', 'next_image'):
            image = getattr(record, name)
            if image is None:
                if name == 'image' or record.episode_end:
                    return f'no {name}'
            elif image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                return f'{name} is {image.dtype} {image.shape}, not uint8 HxWx3'
        shape = self.frames.image_shape if self.frames is not None else None
        if shape is not None and record.image is not None and record.image.shape != shape:
            return f'image of shape {record.image.shape}, the run keeps {shape}'
        return f'action {np.array2string(record.action, precision=3)} is not ' \
            f'{self.config.action_dim} finite numbers'

    def _version_refusal(self, record: TransitionRecord) -> str:
        """'' or why the latents' VAE versions may not join the replay (under the lock)."""
        if record.vae_version == 0 and record.next_vae_version == 0:
            return '' if self.versions.current <= PRETRAINED_VERSION else 'stale'
        verdict = self.versions.check(record.vae_version, record.next_vae_version)
        return '' if verdict == 'ok' else verdict

    # Work (one thread).

    def work(self) -> Work:
        """Do a bounded piece of the current stage; return what happened."""
        if self.lifecycle is None:
            return Work([], False)
        if self.stage == 'explore':
            return self._explore()
        if self.stage == 'pretrain':
            return self._pretrain()
        return self._practise()

    def _explore(self) -> Work:
        assert self.frames is not None and self.lifecycle is not None
        self.frames.poll()
        self.lifecycle.update(frames=self.frames.count)
        if not self.lifecycle.explore_done:
            return Work([], False)
        with self._stage_lock:  # no frame is kept between the flush and the move
            self.frames.flush()
            self.lifecycle.update(frames=self.frames.stored)
            self.lifecycle.start_pretraining()
        self._start_pretraining_stage()
        return Work([self._stage_event(f'{self.frames.stored} exploration frames kept')], True)

    def _pretrain(self) -> Work:
        assert self.pretraining is not None and self.lifecycle is not None
        pretraining, events = self.pretraining, []
        steps = max(0, min(PRETRAIN_CHUNK, self.config.vae_steps - pretraining.step))
        if steps:
            metrics = pretraining.run(steps)
            self.lifecycle.update(vae_step=pretraining.step)
            events.append(Event('pretrain', metrics=metrics))
        period, now = self.config.reconstruction_period_s, self._clock()
        if period and (self._reconstruction_time is None
                       or now - self._reconstruction_time >= period):
            self._reconstruction_time = now
            events.append(Event('reconstruction',
                                image=pretraining.reconstructions(RECONSTRUCTION_FRAMES)))
        if not self.lifecycle.pretrain_done:
            return Work(events, True)
        path = pretraining.finish()
        self.lifecycle.update(vae_step=pretraining.step)
        self.lifecycle.start_practice(PRETRAINED_VERSION)
        self.pretraining = None
        self._start_practice_stage()
        self._seed_replay()
        events.append(self._stage_event(f'VAE pretrained ({self.config.vae_steps} steps), '
                                        f'{self.learner.counts["stored"]} exploration '
                                        'transitions in the replay'))
        events.append(Event('vae', text=f'VAE version {PRETRAINED_VERSION} written to {path}',
                            version=PRETRAINED_VERSION, path=str(path)))
        return Work(events, True)

    def _practise(self) -> Work:
        learner, events = self.learner, []
        self._seed_replay()
        if self._save_due:  # after a fine-tuning round, once its broadcast went out
            self._save_due = False
            if self.run_dir is not None:
                events.append(Event('checkpoint', path=str(self.save())))
        done = learner.train(TRAIN_CHUNK)
        if learner.broadcast_due():
            events.append(Event('policy'))
        if self.run_dir is not None and learner.checkpoint_due():
            events.append(Event('checkpoint', path=str(self.save())))
        fine_tuning = self.fine_tuning
        stored = learner.counts['stored']
        if fine_tuning is not None and fine_tuning.due(stored, self._fine_tuned_at):
            events.append(self.fine_tune())
        return Work(events, bool(done))

    def fine_tune(self) -> Event:
        """Run one fine-tuning round now (see core.latent_versions); return its 'vae' event."""
        assert self.fine_tuning is not None and self.lifecycle is not None
        learner = self.learner
        with learner.exclusive():
            images = learner.buffer.images().copy()
        metrics = self.fine_tuning.train(images)
        with learner.exclusive():
            learner.flush_open_episodes_locked()  # their latents are re-encoded too
            version = self.fine_tuning.refresh(learner.buffer)
            self._fine_tuned_at = learner.counts['stored']
        self.lifecycle.set_vae_version(version)
        # The replay is saved by the next work() call, after the host broadcast the new
        # version: until the encoders have it every arriving transition is 'stale', and
        # saving a replay with its frames takes seconds. A kill before that save is safe:
        # resume re-encodes the replay with the VAE file, which refresh() already wrote.
        self._save_due = True
        loss = metrics.get('loss', float('nan'))
        return Event('vae', text=f'VAE fine-tuned on {len(images)} frames (loss {loss:.4g}): '
                     f'version {version}', version=version, path=str(self.vae_file),
                     metrics=dict(metrics))

    def _stage_event(self, text: str) -> Event:
        return Event('stage', text=f'stage {self.stage}: {text}')

    # Status and shutdown.

    def vae_weights_file(self) -> Optional[pathlib.Path]:
        """Return the VAE file to broadcast (None before practice): the practice's VAE."""
        if self.lifecycle is None:
            given = self.config.vae_checkpoint
            return pathlib.Path(given) if given else None
        return self.vae_file

    def status(self) -> dict[str, Any]:
        """Return the learner's counters, the stages' refusals and the lifecycle's status.

        'received' counts every environment step: 'explore_steps' (exploration steps kept,
        resumed ones included, and those refused after exploring ended) plus
        'practice_received' (the learner's own count of practice transitions).
        """
        status = self.learner.status()
        if self.lifecycle is None:
            return status
        status.update(self._refusals, explore_received=self._explore_received,
                      explore_invalid=self._explore_invalid)
        status.update(self.lifecycle.status())
        # Environment steps, exploration included (kept ones from disk, so a restart keeps
        # the count; plus those refused after exploring ended): the budget of a session.
        explore_steps = (self.frames.steps if self.frames is not None else 0) + (
            self._refusals['exploring'])
        status.update(practice_received=status['received'], explore_steps=explore_steps,
                      received=status['received'] + explore_steps)
        if self.frames is not None and self.stage == 'explore':
            status['frames'] = self.frames.count
        return status

    def save(self) -> Optional[pathlib.Path]:
        """Write the learner's checkpoint and stage.json; return the checkpoint's path."""
        if self.run_dir is None:
            return None
        path = self.learner.save(self.run_dir)
        if self.lifecycle is not None:
            self.lifecycle.save()
        return path

    def shutdown(self) -> Optional[pathlib.Path]:
        """Keep everything (frames, pretraining, open episodes); return the checkpoint path."""
        if self.frames is not None:
            with contextlib.suppress(OSError):
                self.frames.flush()
            if self.lifecycle is not None and self.stage == 'explore':
                self.lifecycle.update(frames=self.frames.stored)
        if self.pretraining is not None:
            self.pretraining.save()
        if self.lifecycle is None or self.run_dir is None:
            return None
        self.learner.flush_open_episodes()
        return self.save()
