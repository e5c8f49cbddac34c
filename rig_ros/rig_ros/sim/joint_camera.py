"""The sim's scene rendered with the arm at given joint angles: a camera for the fake Sawyer.

`JointCamera` owns a `SawyerSim` of the task (metaworld's table, Sawyer and the task's pucks at
their starts, the sim's fixed camera) and renders it with the arm's seven joints set to angles
measured elsewhere (the fake Sawyer's joint states): the joints are written into the model and
`mj_forward` places the bodies; physics never steps, so the arm is exactly where the angles
put it (the hand's mocap weld does not act) and nothing else moves (pucks stay at their starts).

Frames: the arm's base frame (intera's `base`: x forward) is turned by `base_yaw_deg` about
the vertical to sit in the sim's world, whose table lies along +y: at 90 degrees the real
robot's workspace in front of it (config/sawyer_<task>.yaml, x 0.45-0.8 m) lands on the sim's
table (y 0.55-0.75 m), base (x, y) at world (-y, x). Turning the whole arm about its base's
vertical axis is turning right_j0 (that axis; the fixed pedestal below it does not turn, and
stays out of the camera's view), so the yaw is added to right_j0.

The frame is wider than the sim's camera view: `view` is the box of the frame that shows
exactly the sim camera's own 84x84 view (`SawyerSim.render`'s `view`), by default
camera_pipeline's crop in config/sawyer_<task>.yaml, so the pipeline turns these frames into
the sim's frames.
"""

from collections.abc import Sequence
import dataclasses
import math

import mujoco
import numpy as np

from rig_ros import tasks
from rig_ros.core.preprocessing import CropBox
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig

ARM_JOINTS = 7


@dataclasses.dataclass(frozen=True)
class JointCameraConfig:
    """Settings of the scene rendered at measured joint angles."""

    task: str = 'reacher'
    """A `rig_ros.tasks` name: its sim scene (pucks stay at their starts) and camera."""
    image_height: int = 240
    """Frame rows."""
    image_width: int = 320
    """Frame columns (240 x 320, a 4:3 camera: ~30 ms a render on two busy CPU cores)."""
    base_yaw_deg: float = 90.0
    """The arm's base frame turned this much about the vertical in the sim's world (90: the
    real workspace in front of the robot, along base x, lies on the sim's table)."""
    view: tuple[float, float, float, float] = (0.35, 0.25, 0.5, 0.5)
    """(top, left, height, width), fractions of the frame that show exactly the sim camera's
    own view: camera_pipeline's crop in config/sawyer_<task>.yaml (a test keeps them equal)."""

    def __post_init__(self) -> None:
        """Reject bad values, naming the field."""
        tasks.task(self.task)
        for name in ('image_height', 'image_width'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name} must be a positive integer, got {value!r}')
        if not math.isfinite(self.base_yaw_deg):
            raise ValueError(f'base_yaw_deg must be finite, got {self.base_yaw_deg!r}')
        try:
            CropBox.from_fractions(*self.view)
        except (TypeError, ValueError) as error:
            raise ValueError(f'view must be 4 fractions (top, left, height, width) inside the '
                             f'frame, got {self.view!r}: {error}') from None

    @property
    def view_box(self) -> CropBox:
        """`view` as a fractional crop box."""
        return CropBox.from_fractions(*self.view)


class JointCamera:
    """Renders the task's sim scene with the arm at given joint angles (right_j0..right_j6)."""

    def __init__(self, config: JointCameraConfig | None = None) -> None:
        """Build the task's sim at its settled start (fingers closed, pucks placed)."""
        self.config = config if config is not None else JointCameraConfig()
        self.sim = SawyerSim(SawyerSimConfig(task=self.config.task))
        model = self.sim.model
        self._qpos = np.array([model.jnt_qposadr[model.joint(f'right_j{index}').id]
                               for index in range(ARM_JOINTS)])
        yaw = math.radians(self.config.base_yaw_deg)
        self._yaw = yaw
        self._base_to_world = np.array([[math.cos(yaw), -math.sin(yaw), 0.0],
                                        [math.sin(yaw), math.cos(yaw), 0.0],
                                        [0.0, 0.0, 1.0]])
        self._view = self.config.view_box
        self._joints: np.ndarray | None = None
        self._frame: np.ndarray | None = None
        self.renders = 0  # frames rendered (an unchanged arm's frame is not rendered again)

    def set_joints(self, joint_positions: Sequence[float]) -> None:
        """Put the arm at `joint_positions` (7 finite angles, rad) and place the bodies."""
        q = np.asarray(joint_positions, dtype=float)
        if q.shape != (ARM_JOINTS,) or not np.all(np.isfinite(q)):
            raise ValueError(f'joint positions must be {ARM_JOINTS} finite angles, '
                             f'got {joint_positions!r}')
        if self._joints is not None and np.array_equal(q, self._joints):
            return
        self.sim.data.qpos[self._qpos] = q
        self.sim.data.qpos[self._qpos[0]] += self._yaw
        mujoco.mj_forward(self.sim.model, self.sim.data)
        self._joints = q.copy()
        self._frame = None

    @property
    def joints(self) -> np.ndarray | None:
        """The arm's joint angles as last set (None before the first)."""
        return None if self._joints is None else self._joints.copy()

    def hand_position(self) -> np.ndarray:
        """Return the sim's `hand` body (the tool point) in the arm's base frame, metres."""
        return self._base_to_world.T @ self.sim.data.body('hand').xpos

    def base_to_world(self, point: Sequence[float]) -> np.ndarray:
        """Return a point of the arm's base frame in the sim's world frame."""
        return self._base_to_world @ np.asarray(point, dtype=float)

    def render(self, joint_positions: Sequence[float] | None = None) -> np.ndarray:
        """Return the frame (uint8 RGB, image_height x image_width x 3, read-only).

        With `joint_positions` the arm is set there first. The frame of an unchanged arm is
        the previous one: nothing else in the scene moves.
        """
        if joint_positions is not None:
            self.set_joints(joint_positions)
        if self._joints is None:
            raise ValueError('no joint positions yet: set_joints first')
        if self._frame is None:
            frame = self.sim.render(self.config.image_height, self.config.image_width,
                                    view=self._view)
            frame.flags.writeable = False
            self._frame = frame
            self.renders += 1
        return self._frame

    def close(self) -> None:
        """Release the renderer's GL context."""
        self.sim.close()

    def __enter__(self) -> 'JointCamera':
        """Use as a context manager that closes the renderer."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the renderer."""
        self.close()
