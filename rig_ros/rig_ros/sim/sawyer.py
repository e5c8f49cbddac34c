"""Simulated Sawyer for RIG's planar tasks: end-effector velocity control and camera images."""

from collections.abc import Sequence
import dataclasses
import math

import mujoco
import numpy as np

from rig_ros import tasks
from rig_ros.core.preprocessing import CropBox
from rig_ros.sim import scene

# Elbow posture the arm is gently pulled toward (joint springs). The 7-dof arm is redundant
# for a welded hand: without the pull its elbow drifts with the path taken, and the same hand
# position would render differently depending on history, which blurs the VAE's latent distance.
ARM_REFERENCE_POSTURE = (1.94, -0.5, -0.45, 1.27, -2.58, -0.86, -0.07)
ARM_POSTURE_STIFFNESS = 30.0  # N m / rad: converges in ~0.5 s, costs ~1-2 mm of hand accuracy
GRIPPER_DOWN_QUAT = (math.sqrt(0.5), 0.0, math.sqrt(0.5), 0.0)
FINGERS_CLOSED_CTRL = (1.0, -1.0)  # a closed gripper makes a compact pusher
GOAL_INSET_M = 0.005  # the hand stops ~2.5 mm short of far box walls; goals stay inside
GOAL_REDRAWS = 100  # whole goal states drawn before giving up
HAND_PUCK_CLEARANCE_M = 0.035  # fingers' half-footprint plus margin, for goal sampling


EASY_PUCK_GOAL_X_M = 0.15  # easy_puck_goals: puck goals within x +-0.15 m (RIG)


def _pair(name: str, value: Sequence[float], size: int = 2) -> tuple[float, ...]:
    values = tuple(float(v) for v in value)
    if len(values) != size or not all(math.isfinite(v) for v in values):
        raise ValueError(f'{name} must be {size} finite numbers, got {value!r}')
    return values


@dataclasses.dataclass
class SawyerSimConfig:
    """Settings of the simulated Sawyer; `None` fields take the task's defaults."""

    task: str = 'reacher'
    """A `rig_ros.tasks` name: reacher (hand only), pusher (one puck), multi_pusher (two)."""
    control_period_s: float = 0.1
    """Duration of one `step` (RIG: 10 Hz); a multiple of the 2.5 ms physics step."""
    max_speed_m_s: float = 0.2
    """Per-axis end-effector speed limit (RIG: 2 cm per 0.1 s step); action 1 = this speed."""
    hand_z_m: float = 0.07
    """Height the hand is held at; at 0.07 m the closed fingers clear the table and hit pucks."""
    workspace_low: tuple[float, float] | None = None
    """(x, y) lower corner of the box the hand target is clipped to (world frame, metres)."""
    workspace_high: tuple[float, float] | None = None
    """(x, y) upper corner of that box."""
    image_height: int = 84
    """Default `render` height in pixels."""
    image_width: int = 84
    """Default `render` width in pixels."""
    camera_lookat: tuple[float, float, float] | None = None
    """World point the fixed camera looks at."""
    camera_distance_m: float | None = None
    """Camera distance from `camera_lookat`."""
    camera_azimuth_deg: float = -90.0
    """-90: the camera stands in front of the robot, facing it (world +x is the image's left)."""
    camera_elevation_deg: float = -65.0
    """Look-down angle; -90 is straight down."""
    camera_fovy_deg: float = 20.0
    """Vertical field of view; narrow so the arm's top is not magnified much over the hand."""
    puck_radius_m: float = 0.025
    """Puck radius; 0.025 m is ~7 px wide at 84x84 with the default pusher camera."""
    easy_puck_goals: bool = False
    """Puck goals within x +-0.15 m instead of the task's box (RIG's easy pusher: +-0.2 m)."""
    hide_arm: bool = False
    """Simulator diagnostic: images show the fingers and their rail but nothing of the robot
    above them (base, links, wrist, flange), which still moves and collides. No camera on a
    robot sees through its arm: this measures what the arm hiding the puck costs, not a
    recipe."""
    random_hand_start: bool = False
    """Start the hand at a seeded random point of the workspace instead of the task's point."""
    seed: int = 0
    """Seed of the generator behind random starts and goals until `reset(seed)` re-seeds it."""
    settle_steps: int = 400
    """Physics steps (2.5 ms each) to let the hand settle after it is placed somewhere."""

    def __post_init__(self) -> None:
        """Fill in task defaults and reject bad values, naming the field."""
        spec = tasks.task(self.task)
        layout = scene.scene_layout(self.task)
        if self.workspace_low is None:
            self.workspace_low = spec.workspace_low
        if self.workspace_high is None:
            self.workspace_high = spec.workspace_high
        if self.camera_lookat is None:
            self.camera_lookat = layout.camera_lookat
        if self.camera_distance_m is None:
            self.camera_distance_m = layout.camera_distance_m
        self.workspace_low = _pair('workspace_low', self.workspace_low)
        self.workspace_high = _pair('workspace_high', self.workspace_high)
        self.camera_lookat = _pair('camera_lookat', self.camera_lookat, 3)
        if not all(low < high for low, high in zip(self.workspace_low, self.workspace_high)):
            raise ValueError('workspace_low must be below workspace_high on both axes, got '
                             f'{self.workspace_low} and {self.workspace_high}')
        positive = {
            'control_period_s': self.control_period_s, 'max_speed_m_s': self.max_speed_m_s,
            'camera_distance_m': self.camera_distance_m, 'puck_radius_m': self.puck_radius_m,
        }
        for name, value in positive.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be a positive number, got {value!r}')
        for name in ('image_height', 'image_width', 'settle_steps'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name} must be a positive integer, got {value!r}')
        if not 0.06 <= self.hand_z_m <= 0.3:
            raise ValueError(f'hand_z_m must be in [0.06, 0.3] m (table clearance), '
                             f'got {self.hand_z_m!r}')
        if not -90.0 <= self.camera_elevation_deg <= 90.0:
            raise ValueError(f'camera_elevation_deg must be in [-90, 90], '
                             f'got {self.camera_elevation_deg!r}')
        if not 1.0 <= self.camera_fovy_deg <= 120.0:
            raise ValueError(f'camera_fovy_deg must be in [1, 120], got {self.camera_fovy_deg!r}')
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f'seed must be a non-negative integer, got {self.seed!r}')


def _widen_frustum(camera: mujoco.MjvGLCamera, view: CropBox, aspect: float) -> None:
    """Widen a camera's symmetric frustum so that fractional box `view` of it is the original.

    aspect: width / height of the original view (MuJoCo derives its width from the frame's
    aspect when `frustum_width` is 0; a non-zero width is the half-width at the near plane).
    """
    bottom, top = camera.frustum_bottom, camera.frustum_top
    half_width = 0.5 * aspect * (top - bottom)
    full_height = (top - bottom) / view.height
    full_top = top + view.top * full_height
    full_width = 2.0 * half_width / view.width
    full_left = camera.frustum_center - half_width - view.left * full_width
    camera.frustum_top = full_top
    camera.frustum_bottom = full_top - full_height
    camera.frustum_width = 0.5 * full_width
    camera.frustum_center = full_left + 0.5 * full_width


class SawyerSim:
    """Metaworld's Sawyer on plain MuJoCo, driven by end-effector velocity in a plane.

    The hand is welded to a mocap target held at `hand_z_m`; a velocity command moves the
    target by `v * dt` every physics step, clipped to the workspace box. States and goals are
    vectors: hand (x, y), then each puck's (x, y).
    """

    action_dim = 2

    def __init__(self, config: SawyerSimConfig | None = None) -> None:
        """Build the scene, settle the arm at the task's start and keep that as the reset."""
        self.config = config if config is not None else SawyerSimConfig()
        cfg = self.config
        spec = tasks.task(cfg.task)
        self.n_pucks = spec.puck_count
        self.state_dim = 2 + 2 * self.n_pucks
        self.model = mujoco.MjModel.from_xml_string(
            scene.sawyer_scene_xml(self.n_pucks, cfg.puck_radius_m))
        self.data = mujoco.MjData(self.model)
        timestep = self.model.opt.timestep
        self._substeps = round(cfg.control_period_s / timestep)
        if self._substeps < 1 or abs(self._substeps * timestep - cfg.control_period_s) > 1e-9:
            raise ValueError(f'control_period_s must be a multiple of the {timestep} s physics '
                             f'step, got {cfg.control_period_s!r}')
        self._workspace_low = np.array(cfg.workspace_low)
        self._workspace_high = np.array(cfg.workspace_high)
        self._hand_body = self.model.body('hand').id
        self._puck_qpos = [self.model.jnt_qposadr[self.model.joint(f'puck{index}').id]
                           for index in range(self.n_pucks)]
        self._puck_qvel = [self.model.jnt_dofadr[self.model.joint(f'puck{index}').id]
                           for index in range(self.n_pucks)]
        for joint_index, angle in enumerate(ARM_REFERENCE_POSTURE):
            joint = self.model.joint(f'right_j{joint_index}').id
            self.model.jnt_stiffness[joint] = ARM_POSTURE_STIFFNESS
            self.model.qpos_spring[self.model.jnt_qposadr[joint]] = angle

        # Cheap offscreen rendering: no multisampling (set before any Renderer exists).
        self.model.vis.quality.offsamples = 0
        self.model.vis.global_.fovy = cfg.camera_fovy_deg  # used by free cameras
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._camera.lookat[:] = cfg.camera_lookat
        self._camera.distance = cfg.camera_distance_m
        self._camera.azimuth = cfg.camera_azimuth_deg
        self._camera.elevation = cfg.camera_elevation_deg
        if cfg.hide_arm:
            self.model.geom_rgba[self._arm_link_geoms(), 3] = 0.0  # alpha 0: not drawn
        self._scene_option = mujoco.MjvOption()
        self._scene_option.sitegroup[:] = 0  # fingertip and goal-like sites stay undrawn
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

        self._reachable_low = self._workspace_low + GOAL_INSET_M
        self._reachable_high = self._workspace_high - GOAL_INSET_M
        self._hand_goal_low = np.array(spec.hand_goal_low or self._reachable_low)
        self._hand_goal_high = np.array(spec.hand_goal_high or self._reachable_high)
        self._puck_goal_low = np.array(spec.puck_goal_low or (0.0, 0.0))  # (0, 0): no pucks
        self._puck_goal_high = np.array(spec.puck_goal_high or (0.0, 0.0))
        if cfg.easy_puck_goals:
            self._puck_goal_low[0] = max(self._puck_goal_low[0], -EASY_PUCK_GOAL_X_M)
            self._puck_goal_high[0] = min(self._puck_goal_high[0], EASY_PUCK_GOAL_X_M)
        self._hand_start = np.array(spec.hand_start)
        self._puck_starts = np.array(spec.puck_starts).reshape(self.n_pucks, 2)

        self._state_size = mujoco.mj_stateSize(self.model, mujoco.mjtState.mjSTATE_INTEGRATION)
        self._home_state = self._settled_home_state()
        self.rng = np.random.default_rng(cfg.seed)
        self.reset()

    # ----------------------------------------------------------------- state
    def _arm_link_geoms(self) -> np.ndarray:
        """Geoms of the robot (base, pedestal, links) outside the hand's subtree."""
        parents = self.model.body_parentid
        robot, hand = self.model.body('base').id, self.model.body('hand').id

        def under(body: int, root: int) -> bool:
            while body != root and body != 0:
                body = parents[body]
            return body == root

        bodies = self.model.geom_bodyid
        return np.array([geom for geom in range(self.model.ngeom)
                         if under(bodies[geom], robot) and not under(bodies[geom], hand)])

    def _get_state(self) -> np.ndarray:
        state = np.empty(self._state_size)
        mujoco.mj_getState(self.model, self.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
        return state

    def _set_state(self, state: np.ndarray) -> None:
        mujoco.mj_setState(self.model, self.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(self.model, self.data)

    def _settled_home_state(self) -> np.ndarray:
        mujoco.mj_resetData(self.model, self.data)
        for joint_index, angle in enumerate(ARM_REFERENCE_POSTURE):
            self.data.joint(f'right_j{joint_index}').qpos[0] = angle
        self.data.mocap_quat[0] = GRIPPER_DOWN_QUAT
        self.data.ctrl[:] = FINGERS_CLOSED_CTRL
        self.data.mocap_pos[0] = (*self._hand_start, self.config.hand_z_m)
        mujoco.mj_forward(self.model, self.data)
        self._place_hand_and_pucks(self._hand_start, self._puck_starts)
        return self._get_state()

    def _place_hand_and_pucks(self, hand_xy: np.ndarray, pucks_xy: np.ndarray) -> None:
        """Settle the hand at `hand_xy` without touching anything, then put the pucks down."""
        self.data.mocap_pos[0] = (*hand_xy, self.config.hand_z_m)
        # Contacts off while the hand travels, so it cannot shove pucks or snag on them; the
        # pucks fall through the table meanwhile, which does not matter: they are put back.
        contact_bit = int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
        self.model.opt.disableflags |= contact_bit
        try:
            mujoco.mj_step(self.model, self.data, nstep=self.config.settle_steps)
            # The weld leaves the hand 1-3 mm short of its target; aim off by that much so the
            # hand itself lands on `hand_xy`, as it does when a controller drives it there.
            self.data.mocap_pos[0, :2] += hand_xy - self.data.xpos[self._hand_body, :2]
            mujoco.mj_step(self.model, self.data, nstep=self.config.settle_steps // 2)
        finally:
            self.model.opt.disableflags &= ~contact_bit
        for qpos, qvel, puck_xy in zip(self._puck_qpos, self._puck_qvel, pucks_xy):
            self.data.qpos[qpos:qpos + 7] = (*puck_xy, scene.PUCK_HALF_HEIGHT_M, 1, 0, 0, 0)
            self.data.qvel[qvel:qvel + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def reset(self, seed: int | None = None) -> None:
        """Restore the settled start; `seed` re-seeds the generator of random starts and goals."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._set_state(self._home_state)
        if self.config.random_hand_start:
            hand_xy = self._sample_separated(
                self._reachable_low, self._reachable_high, self._puck_starts, self.rng)
            self._place_hand_and_pucks(hand_xy, self._puck_starts)

    def ground_truth(self) -> dict[str, np.ndarray]:
        """Return `hand_xyz` (3,) and `puck_xy` (n_pucks, 2) in metres, world frame."""
        pucks = [self.data.qpos[qpos:qpos + 2] for qpos in self._puck_qpos]
        return {
            'hand_xyz': self.data.xpos[self._hand_body].copy(),
            'puck_xy': np.array(pucks, dtype=float).reshape(self.n_pucks, 2),
        }

    def state_vector(self) -> np.ndarray:
        """Return hand (x, y) then each puck's (x, y): shape (state_dim,)."""
        truth = self.ground_truth()
        return np.concatenate([truth['hand_xyz'][:2], truth['puck_xy'].ravel()])

    def set_state_vector(self, state: np.ndarray) -> None:
        """Put the scene in `state`: settle the hand there from the reset pose, place pucks."""
        state = self._checked_state(state)
        if np.any(state[:2] < self._workspace_low) or np.any(state[:2] > self._workspace_high):
            raise ValueError(f'hand position {state[:2]} is outside the workspace box '
                             f'{self.config.workspace_low}..{self.config.workspace_high}')
        self._set_state(self._home_state)
        self._place_hand_and_pucks(state[:2], state[2:].reshape(self.n_pucks, 2))

    def _checked_state(self, state: np.ndarray) -> np.ndarray:
        state = np.asarray(state, dtype=float)
        if state.shape != (self.state_dim,) or not np.all(np.isfinite(state)):
            raise ValueError(f'a {self.config.task} state is {self.state_dim} finite numbers, '
                             f'got {state!r}')
        return state

    # --------------------------------------------------------------- control
    def step(self, action: np.ndarray) -> None:
        """Advance one control period; `action` in [-1, 1] per axis scales `max_speed_m_s`."""
        action = self._checked_command('action', action)
        self.step_velocity(np.clip(action, -1.0, 1.0) * self.config.max_speed_m_s)

    def step_velocity(self, velocity_m_s: np.ndarray) -> None:
        """Advance one control period at end-effector velocity (vx, vy) in m/s.

        Each axis is clipped to `max_speed_m_s`; the hand target is clipped to the workspace.
        """
        velocity = self._checked_command('velocity_m_s', velocity_m_s)
        limit = self.config.max_speed_m_s
        displacement = np.clip(velocity, -limit, limit) * self.model.opt.timestep
        mocap_xy = self.data.mocap_pos[0, :2]  # a view: updated in place
        for _ in range(self._substeps):
            np.clip(mocap_xy + displacement, self._workspace_low, self._workspace_high,
                    out=mocap_xy)
            mujoco.mj_step(self.model, self.data)
        # Positions (ground truth, rendering) of the state reached, not of the last substep's.
        mujoco.mj_kinematics(self.model, self.data)

    def _checked_command(self, name: str, command: np.ndarray) -> np.ndarray:
        command = np.asarray(command, dtype=float)
        if command.shape != (self.action_dim,):
            raise ValueError(f'{name} must have shape ({self.action_dim},), got {command.shape}')
        if not np.all(np.isfinite(command)):
            raise ValueError(f'{name} must be finite, got {command}')
        return command

    # ----------------------------------------------------------------- goals
    def _sample_separated(self, low: np.ndarray, high: np.ndarray, others: np.ndarray,
                          rng: np.random.Generator, clearance: float | None = None
                          ) -> np.ndarray:
        """Sample uniformly in [low, high] at least `clearance` from each point of `others`."""
        if clearance is None:
            clearance = self.config.puck_radius_m + HAND_PUCK_CLEARANCE_M
        for _ in range(1000):
            point = rng.uniform(low, high)
            if all(np.linalg.norm(point - other) >= clearance for other in others):
                return point
        raise RuntimeError('could not place a goal clear of the others: boxes too small')

    def sample_goal_state(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Sample a goal state from RIG's goal boxes, objects not overlapping each other."""
        rng = self.rng if rng is None else rng
        # Pucks can leave no room for the hand (two pucks in the hand's box): draw them all
        # again then. The first draw, nearly always enough, consumes `rng` as it always did.
        for _ in range(GOAL_REDRAWS):
            try:
                pucks: list[np.ndarray] = []
                for _ in range(self.n_pucks):
                    pucks.append(self._sample_separated(
                        self._puck_goal_low, self._puck_goal_high,
                        np.array(pucks).reshape(-1, 2), rng,
                        clearance=2 * self.config.puck_radius_m + 0.01))
                hand = self._sample_separated(
                    self._hand_goal_low, self._hand_goal_high, np.array(pucks).reshape(-1, 2),
                    rng)
            except RuntimeError:
                continue
            return np.concatenate([hand, *pucks])
        raise RuntimeError(f'no goal state clear of overlaps in {GOAL_REDRAWS} draws: the goal '
                           'boxes are too small for the objects')

    def render_goal(self, goal_state: np.ndarray, height: int | None = None,
                    width: int | None = None) -> np.ndarray:
        """Render the scene set to `goal_state`, then restore the exact current state."""
        saved = self._get_state()
        try:
            self.set_state_vector(goal_state)
            return self.render(height, width)
        finally:
            self._set_state(saved)

    def distances(self, goal_state: np.ndarray) -> dict[str, float]:
        """Return `hand_distance` and (with pucks) `puck_distance`, summed over pucks, in m."""
        goal = self._checked_state(goal_state)
        state = self.state_vector()
        result = {'hand_distance': float(np.linalg.norm(state[:2] - goal[:2]))}
        if self.n_pucks:
            offsets = (state[2:] - goal[2:]).reshape(self.n_pucks, 2)
            result['puck_distance'] = float(np.linalg.norm(offsets, axis=1).sum())
        return result

    # ------------------------------------------------------------- rendering
    def render(self, height: int | None = None, width: int | None = None,
               view: CropBox | None = None) -> np.ndarray:
        """Return the fixed camera's RGB image, uint8 (height, width, 3).

        view: a fractional box of the frame that shows exactly what the camera shows at its
            own `image_height` x `image_width`; the rest of the frame widens that view (an
            off-centre frustum: the frame is a wider camera of which `view` is the crop).
            Pixels are square only when the box has the camera's aspect. None: the frame is
            the camera's view.
        """
        if view is not None and not view.fractional:
            raise ValueError(f'view must be a fractional box, got {view}')
        renderer = self._renderer(height, width)
        renderer.update_scene(self.data, self._camera, self._scene_option)
        if view is not None:
            for camera in renderer.scene.camera:  # both eyes: MuJoCo averages them
                _widen_frustum(camera, view, self.config.image_width / self.config.image_height)
        return renderer.render()

    def _renderer(self, height: int | None, width: int | None) -> mujoco.Renderer:
        """Return the renderer of this image size (None: the config's), made on first use."""
        height = self.config.image_height if height is None else int(height)
        width = self.config.image_width if width is None else int(width)
        renderer = self._renderers.get((height, width))
        if renderer is None:
            if height < 1 or width < 1:
                raise ValueError(f'image size must be positive, got {height}x{width}')
            visual = self.model.vis.global_
            # The offscreen buffer is sized from the model when a Renderer is created.
            visual.offheight = max(visual.offheight, height)
            visual.offwidth = max(visual.offwidth, width)
            renderer = mujoco.Renderer(self.model, height, width)
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            self._renderers[(height, width)] = renderer
        return renderer

    def visible_puck_fractions(self, height: int | None = None,
                               width: int | None = None) -> np.ndarray:
        """Return, per puck, the share of its silhouette the fixed camera sees, (n_pucks,).

        A puck's pixels in the frame (segmentation) over its pixels with every other geom
        hidden: 0 where the arm covers it or it lies out of view. A goal image that hides its
        puck gives the latent nothing to aim the puck at. Renders the current scene twice.
        """
        renderer = self._renderer(height, width)
        puck_geoms = [self.model.geom(f'puck{index}').id for index in range(self.n_pucks)]
        colours = self.model.geom_rgba.copy()
        renderer.enable_segmentation_rendering()
        try:
            renderer.update_scene(self.data, self._camera, self._scene_option)
            seen = renderer.render()[..., 0]
            self.model.geom_rgba[:, 3] = 0.0  # geoms without alpha stay out of the scene
            self.model.geom_rgba[puck_geoms, 3] = 1.0
            renderer.update_scene(self.data, self._camera, self._scene_option)
            alone = renderer.render()[..., 0]
        finally:
            self.model.geom_rgba[:] = colours
            renderer.disable_segmentation_rendering()
        fractions = [np.count_nonzero(seen == geom) / max(np.count_nonzero(alone == geom), 1)
                     for geom in puck_geoms]
        return np.array(fractions, dtype=float)

    def close(self) -> None:
        """Release the renderers' GL contexts (EGL complains at exit otherwise)."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def __enter__(self) -> 'SawyerSim':
        """Use as a context manager that closes the renderers."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the renderers."""
        self.close()
