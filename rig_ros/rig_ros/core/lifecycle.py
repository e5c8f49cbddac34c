"""The stages of a RIG run in the graph's learner: explore, pretrain, practise.

- explore: there is no VAE yet; the robots act with random end-effector velocities and the
  learner keeps the camera frames (`core.frames.FrameStore`) until `explore_frames` are kept.
- pretrain: the learner trains the beta-VAE on those frames (`core.vae_training`) until
  `vae_steps` minibatches are done, then writes `vae.safetensors` (version 1).
- practise: imagined goals; the exploration episodes, encoded, are the replay's first
  transitions (`core.latent_versions.add_exploration`); with fine-tuning the VAE gets new
  versions.

Stages only move forward, and only when the host says the stage's work is durable
(`start_pretraining` after the frames are flushed, `start_practice` after the VAE is
written), so a kill between the work and the move repeats at most the move. A VAE checkpoint
given in the config skips explore and pretrain (a run already practising keeps its stage).

The state is `stage.json` in the run directory, written atomically (`core.files`) at every
move and by `save()`: the stage, the counters last recorded (`update`), the VAE version the
replay's latents are made with, whether the exploration is in the replay, and when each stage
began. The counters have durable homes of their own (the frame store's chunks, the VAE
pretraining checkpoint); a resumed host records them again from there. The budgets are the
current config's: raising `vae_steps` lengthens a pretraining under way; a stage already
left is not re-entered.

Seeding the replay with the exploration happens once, at the start of practice, before any
robot transition is accepted (`accepts_transitions`): the host seeds while
`replay_seeding_due(stored)`, saves its replay (the learner's checkpoint), then calls
`mark_replay_seeded()`. A kill after the save but before the mark leaves a resumed replay
that already holds transitions, which `replay_seeding_due` takes as seeded.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
import pathlib
import time
from typing import Any, Callable, Literal, Optional

from rig_ros.core.checkpoints import CheckpointError
from rig_ros.core.files import atomic_write_text

Stage = Literal['explore', 'pretrain', 'practise']
STAGES: tuple[Stage, ...] = ('explore', 'pretrain', 'practise')
STAGE_FILE = 'stage.json'
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LifecycleConfig:
    """Budgets of the stages before practice."""

    explore_frames: int = 5000
    """Exploration frames to keep before pretraining the VAE."""
    vae_steps: int = 5000
    """VAE pretraining minibatches."""
    vae_checkpoint: str = ''
    """A VAE checkpoint file or run directory to practise with: skips explore and pretrain.
    Empty: the run explores and pretrains its own VAE."""

    def __post_init__(self) -> None:
        """Check the values; an error names the field."""
        for name in ('explore_frames', 'vae_steps'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name} must be an integer >= 1, got {value!r}')


class Lifecycle:
    """The run's stage, its moves and their record in stage.json (see the module doc).

    Resumes `run_dir/stage.json` when there is one (raising CheckpointError if it is not
    readable) and writes it otherwise; run_dir None keeps the stage in memory only (a run
    practising with a given VAE and no run directory). `clock` gives the wall time recorded
    per stage.
    """

    def __init__(self, run_dir: Optional[str | os.PathLike],
                 config: Optional[LifecycleConfig] = None,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.config = config or LifecycleConfig()
        self.path = pathlib.Path(run_dir) / STAGE_FILE if run_dir is not None else None
        self._clock = clock
        self.stage: Stage = 'explore'
        self.frames = 0
        """Exploration frames kept (as last recorded)."""
        self.vae_step = 0
        """VAE pretraining steps done (as last recorded)."""
        self.vae_version = 0
        """Version of the VAE the replay's latents are made with (0: none yet)."""
        self.replay_seeded = False
        """Whether the encoded exploration is in the replay."""
        self.began: dict[str, float] = {}
        """Wall time at which each stage began."""
        self.resumed = self.path is not None and self.path.is_file()
        if self.resumed:
            self._load()
        else:
            self.began['explore'] = clock()
        if self.config.vae_checkpoint and self.stage != 'practise':
            self._move('practise')
        elif not self.resumed:
            self.save()

    # Progress and moves.

    def update(self, *, frames: Optional[int] = None, vae_step: Optional[int] = None) -> None:
        """Record the counters (in memory; written with the next move or save())."""
        if frames is not None:
            self.frames = int(frames)
        if vae_step is not None:
            self.vae_step = int(vae_step)

    @property
    def explore_done(self) -> bool:
        """Whether exploring has kept its budget of frames (stage 'explore' only)."""
        return self.stage == 'explore' and self.frames >= self.config.explore_frames

    @property
    def pretrain_done(self) -> bool:
        """Whether pretraining has done its VAE steps (stage 'pretrain' only)."""
        return self.stage == 'pretrain' and self.vae_step >= self.config.vae_steps

    def start_pretraining(self) -> None:
        """Move explore -> pretrain; call once the frames are flushed and explore_done."""
        if not self.explore_done:
            raise RuntimeError(f'cannot start pretraining: {self.waiting_for()}')
        self._move('pretrain')

    def start_practice(self, vae_version: int) -> None:
        """Move pretrain -> practise once the VAE of `vae_version` is written."""
        if not self.pretrain_done:
            raise RuntimeError(f'cannot start practice: {self.waiting_for()}')
        self.vae_version = int(vae_version)
        self._move('practise')

    def _move(self, stage: Stage) -> None:
        self.stage = stage
        self.began[stage] = self._clock()
        self.replay_seeded = False
        self.save()

    # Practice.

    def replay_seeding_due(self, stored: int) -> bool:
        """Whether the exploration must still be encoded into the replay (module doc).

        `stored`: transitions the host's replay holds (the learner's resumed count). A replay
        that holds some before the mark can only hold the seeded exploration, so it is marked.
        """
        if self.stage != 'practise' or self.replay_seeded:
            return False
        if stored > 0:
            self.mark_replay_seeded()
            return False
        return True

    def mark_replay_seeded(self) -> None:
        """Record that the exploration is in the replay (and saved with it)."""
        self.replay_seeded = True
        self.save()

    def set_vae_version(self, version: int) -> None:
        """Record the VAE version of the replay's latents (after a fine-tuning round)."""
        self.vae_version = int(version)
        self.save()

    @property
    def accepts_frames(self) -> bool:
        """Whether camera frames are kept (exploring)."""
        return self.stage == 'explore'

    @property
    def accepts_transitions(self) -> bool:
        """Whether robot transitions go to the replay (practising, exploration seeded)."""
        return self.stage == 'practise' and self.replay_seeded

    # Status and persistence.

    def waiting_for(self) -> str:
        """Return what the current stage waits for, in words."""
        config = self.config
        if self.stage == 'explore':
            return f'exploration frames ({self.frames}/{config.explore_frames})'
        if self.stage == 'pretrain':
            return f'VAE pretraining ({self.vae_step}/{config.vae_steps} steps)'
        if not self.replay_seeded:
            return 'the exploration to be encoded into the replay'
        return 'robot transitions'

    def status(self) -> dict[str, Any]:
        """Return the stage, what it waits for and the counters (JSON, for the status topic)."""
        config = self.config
        progress = {'explore': self.frames / config.explore_frames,
                    'pretrain': self.vae_step / config.vae_steps}.get(self.stage, 1.0)
        return {'stage': self.stage, 'waiting_for': self.waiting_for(),
                'progress': round(min(progress, 1.0), 4), 'frames': self.frames,
                'explore_frames': config.explore_frames, 'vae_step': self.vae_step,
                'vae_steps': config.vae_steps, 'vae_version': self.vae_version,
                'replay_seeded': self.replay_seeded}

    def save(self) -> Optional[pathlib.Path]:
        """Write stage.json atomically; return its path (None: kept in memory only)."""
        if self.path is None:
            return None
        state = {'format_version': FORMAT_VERSION, 'stage': self.stage, 'frames': self.frames,
                 'vae_step': self.vae_step, 'vae_version': self.vae_version,
                 'replay_seeded': self.replay_seeded, 'began': self.began,
                 'explore_frames': self.config.explore_frames,
                 'vae_steps': self.config.vae_steps}
        return atomic_write_text(self.path, json.dumps(state, indent=2, sort_keys=True))

    def _load(self) -> None:
        assert self.path is not None
        try:
            state = json.loads(self.path.read_text())
            if state.get('format_version') != FORMAT_VERSION or state['stage'] not in STAGES:
                raise ValueError(f'format {state.get("format_version")!r}, '
                                 f'stage {state.get("stage")!r}')
            self.stage = state['stage']
            self.frames, self.vae_step = int(state['frames']), int(state['vae_step'])
            self.vae_version = int(state['vae_version'])
            self.replay_seeded = bool(state['replay_seeded'])
            self.began = {str(key): float(value) for key, value in state['began'].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise CheckpointError(f'{self.path} is not a stage record: {error!r}') from None
