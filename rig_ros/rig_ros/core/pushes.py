"""Exploration pushes aimed at a puck: a way to show a kept puck in many places.

Random exploration seldom touches the puck (about 4 % of its steps on the pusher with the hand
re-set into its box), so a puck that nobody puts back sits where it was left for many
episodes and the frames show it in few places. An aimed push takes the hand behind a puck, on
the side away from a destination drawn in the task's puck-goal box, then through the puck
towards that destination, stopping short of it: the puck ends near the destination.
It needs the pucks' positions: the simulator's true ones, or a camera tracker's
(`core.tracker.PuckTracker`, calibrated on frames of the puck at `calibration_states`' places,
as a robot's would be on marked spots); `core.pipeline.explore` uses either, the graph's policy
the tracker (`core.policy_runtime`, towards a box of its parameters).
States are a task's state vectors (`core.resets`): the hand's (x, y), then each puck's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rig_ros import tasks
from rig_ros.core.hands import HandBox
from rig_ros.core.resets import HAND_DIMS

PUSH_BEHIND_M = 0.08
"""Hand centre to puck centre where the approach ends: clear of the puck, in line to push."""
PUSH_SHORT_M = 0.04
"""The hand stops this far before the destination; the puck, ahead of it, ends near it."""
APPROACH_M = 0.02
"""Below this distance to its waypoint the action shrinks in proportion (about one full-speed
step of the simulated Sawyer), so the hand settles instead of overshooting."""


@dataclasses.dataclass(frozen=True)
class AimedPush:
    """Two waypoints: behind the puck, then through it towards its destination."""

    behind: np.ndarray
    through: np.ndarray

    def action(self, hand: np.ndarray, progress: float) -> np.ndarray:
        """Return the action in [-1, 1] per axis at `progress` in [0, 1) of the push's steps.

        The first half approaches `behind`, the second pushes towards `through`.
        """
        waypoint = self.behind if progress < 0.5 else self.through
        return np.clip((waypoint - np.asarray(hand, dtype=float)) / APPROACH_M, -1.0, 1.0)


CALIBRATION_GRID = (4, 3)
"""Calibration places: columns x rows spread over the puck-goal box, its corners included."""


def calibration_states(task_name: str) -> np.ndarray:
    """Return states with one puck on each calibration place and the hand out of the way.

    The hand sits at the workspace corner of lowest y and highest x, away from the camera's
    line of sight to the places; only the first puck is placed, the others keep their starts.
    """
    spec = tasks.task(task_name)
    if not spec.puck_starts or spec.puck_goal_low is None or spec.puck_goal_high is None:
        raise ValueError(f'task {task_name!r} has no puck to calibrate a tracker on')
    low, high = np.array(spec.puck_goal_low), np.array(spec.puck_goal_high)
    columns, rows = CALIBRATION_GRID
    hand = np.array([spec.workspace_high[0], spec.workspace_low[1]])
    others = np.asarray(spec.puck_starts[1:], dtype=float).reshape(-1)
    return np.stack([np.concatenate([hand, [x, y], others])
                     for x in np.linspace(low[0], high[0], columns)
                     for y in np.linspace(low[1], high[1], rows)])


def aimed_push(state: np.ndarray, task_name: str, rng: np.random.Generator) -> AimedPush | None:
    """Return a push of a random puck of `state` towards a uniform point of its goal box.

    None for a task without pucks or without a puck-goal box (nothing to push).
    """
    spec = tasks.task(task_name)
    pucks = np.asarray(state, dtype=float)[HAND_DIMS:].reshape(-1, 2)
    if len(pucks) == 0 or spec.puck_goal_low is None or spec.puck_goal_high is None:
        return None
    box = HandBox(spec.puck_goal_low, spec.puck_goal_high)
    return push_into_box(pucks[rng.integers(len(pucks))], box, rng)


def push_into_box(puck: np.ndarray, box: HandBox, rng: np.random.Generator) -> AimedPush:
    """Return a push of the puck at (x, y) `puck` towards a uniform point of `box`."""
    puck = np.asarray(puck, dtype=float)
    destination = rng.uniform(box.low, box.high)
    offset = destination - puck
    length = float(np.linalg.norm(offset))
    if length > 1e-6:
        direction = offset / length
    else:  # a puck already at its destination: pushed in a random direction instead
        angle = rng.uniform(0.0, 2 * np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
    return AimedPush(behind=puck - PUSH_BEHIND_M * direction,
                     through=puck + max(length - PUSH_SHORT_M, 0.0) * direction)
