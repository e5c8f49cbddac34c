"""The task registry: which RIG tasks exist and what each one is, as plain data.

graph.py (the `task` argument and the parameter files), sim/ (`SawyerSimConfig`: boxes,
starts, pucks) and cli/ (`--task`) read `TASKS`; nothing here imports MuJoCo or rclpy.

Adding a task is one `TaskSpec` in `TASKS` plus its camera framing in
`rig_ros.sim.scene.SCENE_LAYOUTS`; test/unit/test_tasks.py checks that the graph, the sim and
the CLI offer exactly the registry's tasks.

Positions are (x, y) in metres in the sim's world frame, the robot's base at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Optional

Point = tuple[float, float]


def _is_point(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in value)


def _inside(point: Point, low: Point, high: Point) -> bool:
    return all(lo <= v <= hi for v, lo, hi in zip(point, low, high))


@dataclass(frozen=True)
class TaskSpec:
    """One task: its objects, start, goal boxes and parameter files.

    name: the task's name (graph argument and node parameter `task`, `rig ... --task`).
    summary: one line for help texts.
    workspace_low, workspace_high: corners of the box the hand is kept in.
    hand_start: the hand's position after a reset.
    puck_starts: each puck's position after a reset; their number is `puck_count`.
    hand_goal_low, hand_goal_high: corners of the box hand goals are drawn from; None: the
        workspace box, inset by the sim so that the hand reaches every goal.
    puck_goal_low, puck_goal_high: corners of the box puck goals are drawn from (None without
        pucks); the sim's `easy_puck_goals` narrows its x range.
    param_file: `config/<param_file>.yaml`, layered after the base `config/rig.yaml`, holding
        only what this task sets differently; None: the base file holds everything.
    robot_config: `config/<robot_config>.yaml`, the real Sawyer's settings for the task
        (driver, safety box, reset posture, camera crop), layered with `sim:=false`; None:
        simulation only.
    """

    name: str
    summary: str
    workspace_low: Point
    workspace_high: Point
    hand_start: Point
    puck_starts: tuple[Point, ...] = ()
    hand_goal_low: Optional[Point] = None
    hand_goal_high: Optional[Point] = None
    puck_goal_low: Optional[Point] = None
    puck_goal_high: Optional[Point] = None
    param_file: Optional[str] = None
    robot_config: Optional[str] = None

    def __post_init__(self) -> None:
        """Reject inconsistent specs, naming the field."""
        if not (self.name.isidentifier() and self.name.isascii() and self.name.islower()):
            raise ValueError(f'task name must be a lower-case identifier, got {self.name!r}')
        points = {'workspace_low': self.workspace_low, 'workspace_high': self.workspace_high,
                  'hand_start': self.hand_start}
        points.update({f'puck_starts[{i}]': p for i, p in enumerate(self.puck_starts)})
        for name, value in points.items():
            if not _is_point(value):
                raise ValueError(f'{self.name}: {name} must be 2 finite numbers, got {value!r}')
        self._check_box('workspace', self.workspace_low, self.workspace_high)
        for name, point in points.items():
            if not _inside(point, self.workspace_low, self.workspace_high):
                raise ValueError(f'{self.name}: {name} {point} is outside the workspace box')
        if not self.puck_starts and (self.puck_goal_low, self.puck_goal_high) != (None, None):
            raise ValueError(f'{self.name}: puck goal box without pucks')
        self._check_box('hand_goal', self.hand_goal_low, self.hand_goal_high, optional=True)
        self._check_box('puck_goal', self.puck_goal_low, self.puck_goal_high,
                        optional=not self.puck_starts)

    def _check_box(self, name: str, low: Optional[Point], high: Optional[Point],
                   optional: bool = False) -> None:
        if optional and low is None and high is None:
            return
        if not (_is_point(low) and _is_point(high) and all(
                lo < hi for lo, hi in zip(low, high))):
            raise ValueError(f'{self.name}: {name}_low {low!r} must be below {name}_high '
                             f'{high!r} on both axes (2 finite numbers each)')
        if not (_inside(low, self.workspace_low, self.workspace_high)
                and _inside(high, self.workspace_low, self.workspace_high)):
            raise ValueError(f'{self.name}: the {name} box leaves the workspace box')

    @property
    def puck_count(self) -> int:
        """Number of pucks in the scene (0: the hand only)."""
        return len(self.puck_starts)


# RIG's boxes (multiworld): reacher hand x [-0.2, 0.2], y [0.55, 0.75]; pusher puck starts at
# (0, 0.6), puck goals x +-0.2 (easy +-0.15), y [0.5, 0.7], hand goals x +-0.05, y [0.55, 0.65].
_PUSHING = {'workspace_low': (-0.25, 0.45), 'workspace_high': (0.25, 0.8),
            'hand_start': (0.0, 0.5),
            'hand_goal_low': (-0.05, 0.55), 'hand_goal_high': (0.05, 0.65),
            'puck_goal_low': (-0.2, 0.5), 'puck_goal_high': (0.2, 0.7),
            'param_file': 'pushing', 'robot_config': 'sawyer_pusher'}

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec('reacher', 'the hand reaches the goal position (RIG visual reacher)',
             workspace_low=(-0.2, 0.55), workspace_high=(0.2, 0.75), hand_start=(0.0, 0.6),
             robot_config='sawyer_reacher'),
    TaskSpec('pusher', 'the hand pushes one puck; hand and puck reach their goals',
             puck_starts=((0.0, 0.6),), **_PUSHING),
    TaskSpec('multi_pusher', 'the hand pushes two pucks; hand and pucks reach their goals',
             puck_starts=((-0.1, 0.6), (0.1, 0.6)), **_PUSHING),
)}
"""Every task, by name, in the order help texts list them."""

TASK_NAMES: tuple[str, ...] = tuple(TASKS)
"""The tasks' names: the choices of every `task` argument."""


def task(name: str) -> TaskSpec:
    """Return the task called `name`; ValueError names the known tasks."""
    spec = TASKS.get(name)
    if spec is None:
        raise ValueError(f'unknown task {name!r}; expected one of {", ".join(TASK_NAMES)}')
    return spec
