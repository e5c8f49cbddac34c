"""When the simulated robot moves and where it resets: lockstep or real time, start or goal.

Lockstep: every velocity command advances the sim exactly one control period and a frame is
due at once. When no command has come for `idle_frame_period_s` since the last frame, the
current frame is due again, so a lost frame (or a policy not yet running) never stalls the
command -> frame -> latent -> command loop. After a reset the frame comes again sooner
(`reset_frame_delay_s`): the reset's own frame predates the episode's goal, which the goal
scheduler stamps once the reset has returned, and a policy starts on a frame newer than that.
Real time: a wall-clock tick every control period integrates the latest command, or zero
once the command is older than `command_timeout_s` (watchdog), and a frame is due per tick.
Resets: each reset has the next seed of the sim's sequence; with `reset_to_goal_probability`
(drawn from the reset's seed, so reproducible) the scene is set to a sampled goal state
(`SawyerSim.sample_goal_state`: the hand and any pucks) instead of the ordinary start: RIG's
recipe for simulated VAE data, whose frames then also show goal-like scenes. What a robot can
do instead (`core.resets`): `keep_objects` leaves the pucks where the last episode pushed them
(a robot cannot put them back), `hand_to_goal_box` moves the hand to a random point of the
task's hand-goal box clear of them (a robot knows its hand), so episodes start as goal scenes
look; both apply to the resets that do not set a goal state.

Pure logic: the node passes monotonic times in and publishes when told a frame is due.
"""

from dataclasses import dataclass
import math
from typing import Optional

import numpy as np

from rig_ros.core.resets import HAND_DIMS, hand_to_goal_box, kept_objects
from rig_ros.sim.sawyer import SawyerSim


@dataclass(frozen=True)
class SimDriverConfig:
    """How the mujoco_sim node steps and resets the sim.

    lockstep: advance one control period per velocity command (fast practice); false: real
        time at one control period per wall-clock tick, as on the robot.
    idle_frame_period_s: lockstep: republish the current frame when no command came for this
        long; longer than a loaded machine's command -> frame -> command round trip.
    reset_frame_delay_s: lockstep: republish this long after a reset (after the goal that
        follows the reset, so that the episode's first frame is stamped after it).
    command_timeout_s: real time: a command older than this is replaced by zero (watchdog).
    reset_to_goal_probability: chance in [0, 1] that a reset sets the scene to a sampled goal
        state (hand and pucks) instead of the ordinary start (RIG's simulated VAE data).
    keep_objects: other resets leave the pucks where they were (out of the hand's reach or
        under the re-set hand: back to their start), as on a robot.
    hand_to_goal_box: other resets then move the hand to a random point of the task's
        hand-goal box, clear of the pucks (tasks without one: the start).
    """

    lockstep: bool = True
    idle_frame_period_s: float = 0.25
    reset_frame_delay_s: float = 0.05
    command_timeout_s: float = 0.2
    reset_to_goal_probability: float = 0.0
    keep_objects: bool = False
    hand_to_goal_box: bool = False

    def __post_init__(self) -> None:
        for name in ('idle_frame_period_s', 'reset_frame_delay_s', 'command_timeout_s'):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f'{name} must be a positive number of seconds, got {value!r}')
        probability = self.reset_to_goal_probability
        if (isinstance(probability, bool) or not isinstance(probability, (int, float))
                or not 0.0 <= probability <= 1.0):
            raise ValueError(f'reset_to_goal_probability must be a number in [0, 1], '
                             f'got {probability!r}')


@dataclass(frozen=True, eq=False)  # eq=False: no elementwise comparison of goal states
class ResetOutcome:
    """What a reset did: its seed, and the goal state the scene was set to (None: the start)."""

    seed: int
    goal_state: Optional[np.ndarray] = None
    start_state: Optional[np.ndarray] = None
    """The state a keep_objects / hand_to_goal_box reset set (None: the plain start)."""

    @property
    def to_goal(self) -> bool:
        """Whether the scene was set to a sampled goal state."""
        return self.goal_state is not None

    def describe(self) -> str:
        """Say what the reset did, in words (the reset service's response)."""
        if self.goal_state is not None:
            return (f'reset with seed {self.seed} to a sampled goal state '
                    f'{_listed(self.goal_state)}')
        if self.start_state is not None:
            return (f'reset with seed {self.seed} to the start with the hand and pucks at '
                    f'{_listed(self.start_state)}')
        return f'reset with seed {self.seed} to the start'


def _listed(state: np.ndarray) -> str:
    return '[' + ', '.join(f'{value:.3f}' for value in state) + ']'


class SimDriver:
    """Turns velocity commands and clock ticks into sim steps and due frames."""

    def __init__(self, sim: SawyerSim, config: SimDriverConfig) -> None:
        self.sim = sim
        self.config = config
        self._velocity = np.zeros(sim.action_dim)
        self._command_time: Optional[float] = None
        self._next_frame = -math.inf  # lockstep: when the current frame is due again
        self._resets = 0

    @property
    def tick_period_s(self) -> float:
        """How often the node should call `tick`."""
        if self.config.lockstep:
            return min(self.config.idle_frame_period_s, self.config.reset_frame_delay_s) / 4.0
        return self.sim.config.control_period_s

    def command(self, velocity_m_s: np.ndarray, now: float) -> bool:
        """Take a velocity (vx, vy) in m/s; True if a frame is due now (lockstep).

        Raises ValueError, leaving everything unchanged, for a non-finite or misshaped command.
        The sim clips each axis to its maximum speed and the hand to its workspace box.
        """
        velocity = np.asarray(velocity_m_s, dtype=float)
        if velocity.shape != (self.sim.action_dim,) or not np.all(np.isfinite(velocity)):
            raise ValueError(f'velocity must be {self.sim.action_dim} finite numbers (m/s), '
                             f'got {velocity_m_s!r}')
        if self.config.lockstep:
            self.sim.step_velocity(velocity)
            return True
        self._velocity, self._command_time = velocity, now
        return False

    def tick(self, now: float) -> bool:
        """Advance the clock (call every `tick_period_s`); True if a frame is due now."""
        if self.config.lockstep:
            return now >= self._next_frame
        fresh = (self._command_time is not None
                 and now - self._command_time <= self.config.command_timeout_s)
        self.sim.step_velocity(self._velocity if fresh else np.zeros(self.sim.action_dim))
        return True

    def frame_published(self, now: float, reset: bool = False) -> None:
        """Record that a frame (`reset`: a reset's frame) went out at `now`."""
        delay = self.config.reset_frame_delay_s if reset else self.config.idle_frame_period_s
        self._next_frame = now + delay

    def reset(self) -> ResetOutcome:
        """Reset the sim with the next seed of this sim's sequence, to its start or a goal.

        The seed re-seeds the sim's generator, which then decides (with
        `reset_to_goal_probability`) and samples the goal state: the same seed, the same reset.
        """
        config, task = self.config, self.sim.config.task
        seed = int(np.random.SeedSequence((self.sim.config.seed, self._resets))
                   .generate_state(1)[0] & 0x7FFFFFFF)
        # The first reset has nothing to keep: the scene is at its start.
        objects = (self.sim.state_vector()[HAND_DIMS:]
                   if config.keep_objects and self._resets > 0 else None)
        self._resets += 1
        self.sim.reset(seed=seed)
        self._velocity, self._command_time = np.zeros(self.sim.action_dim), None
        probability = config.reset_to_goal_probability
        # No draw at probability 0: the sim's generator stays as it was without this option.
        if probability > 0 and self.sim.rng.random() < probability:
            goal_state = self.sim.sample_goal_state()
            self.sim.set_state_vector(goal_state)
            return ResetOutcome(seed, goal_state)
        if objects is None and not config.hand_to_goal_box:
            return ResetOutcome(seed)
        state = self.sim.state_vector()
        if objects is not None:
            state = kept_objects(state, objects, task)
        if config.hand_to_goal_box:
            state = hand_to_goal_box(state, task, self.sim.rng)
        self.sim.set_state_vector(state)
        return ResetOutcome(seed, start_state=state)
