"""MJCF for the RIG Sawyer scenes, built at run time around metaworld's installed assets.

The objects, starts and goal boxes of a scene are its task's (`rig_ros.tasks`); what only the
sim has, how the camera frames the task, is its `SCENE_LAYOUTS` entry, one per task.
"""

from dataclasses import dataclass
import pathlib

from rig_ros import tasks


@dataclass(frozen=True)
class SceneLayout:
    """How the sim's fixed camera frames a task's workspace (the task's defaults).

    camera_lookat: world point (x, y, z) the camera looks at, metres.
    camera_distance_m: camera distance from `camera_lookat`.
    """

    camera_lookat: tuple[float, float, float]
    camera_distance_m: float


_PUSHING_VIEW = SceneLayout((0.0, 0.64, 0.0), 1.9)
SCENE_LAYOUTS: dict[str, SceneLayout] = {
    'reacher': SceneLayout((0.0, 0.67, 0.0), 1.6),
    'pusher': _PUSHING_VIEW,
    'multi_pusher': _PUSHING_VIEW,
}
"""Every registry task's scene layout, by task name (test_tasks.py checks they match)."""


def scene_layout(task: str) -> SceneLayout:
    """Return the scene layout of registry task `task`; ValueError names the known tasks."""
    tasks.task(task)
    layout = SCENE_LAYOUTS.get(task)
    if layout is None:
        raise ValueError(f'task {task!r} has no scene layout in rig_ros.sim.scene.SCENE_LAYOUTS')
    return layout


PUCK_COLOURS = ((0.1, 0.3, 0.95), (0.1, 0.8, 0.2))
PUCK_HALF_HEIGHT_M = 0.02


def metaworld_assets_dir() -> pathlib.Path:
    """Return the `assets` folder of the installed metaworld package."""
    import metaworld  # imported here: only the scene builder needs the package

    assets = pathlib.Path(metaworld.__file__).resolve().parent / 'assets'
    if not (assets / 'objects' / 'assets' / 'xyz_base.xml').is_file():
        raise FileNotFoundError(f'metaworld Sawyer assets not found under {assets}')
    return assets


def _puck_body(index: int, radius_m: float) -> str:
    red, green, blue = PUCK_COLOURS[index]
    mass_kg = 0.2
    # Explicit inertia (solid cylinder): metaworld's compiler counts only geoms of groups 4-5.
    axial = 0.5 * mass_kg * radius_m ** 2
    transverse = mass_kg * (3 * radius_m ** 2 + (2 * PUCK_HALF_HEIGHT_M) ** 2) / 12
    return f"""
    <body name="puck{index}" pos="0 0.6 {PUCK_HALF_HEIGHT_M}">
      <freejoint name="puck{index}"/>
      <inertial pos="0 0 0" mass="{mass_kg}" diaginertia="{transverse} {transverse} {axial}"/>
      <geom name="puck{index}" type="cylinder" size="{radius_m} {PUCK_HALF_HEIGHT_M}"
            rgba="{red} {green} {blue} 1" friction="0.5 0.005 0.0001" condim="4"/>
    </body>"""


def sawyer_scene_xml(n_pucks: int, puck_radius_m: float) -> str:
    """Return the MJCF of metaworld's table and Sawyer with `n_pucks` free pucks.

    metaworld's task scenes are not used: they add a goal site and a red cylinder that a
    reacher would have to hide. The arm's hand is welded to a mocap body (`mocap`).
    """
    assets = metaworld_assets_dir()
    # The included files name meshes and textures as '../objects/...' and '../textures/...',
    # so any folder one level below `assets` works as meshdir and texturedir.
    relative_root = assets / 'scene'
    pucks = ''.join(_puck_body(index, puck_radius_m) for index in range(n_pucks))
    return f"""<mujoco model="rig_sawyer">
  <compiler angle="radian" meshdir="{relative_root}" texturedir="{relative_root}"/>
  <include file="{assets / 'scene' / 'basic_scene.xml'}"/>
  <include file="{assets / 'objects' / 'assets' / 'xyz_base_dependencies.xml'}"/>
  <worldbody>
    <include file="{assets / 'objects' / 'assets' / 'xyz_base.xml'}"/>{pucks}
  </worldbody>
  <actuator>
    <position name="right_finger" joint="r_close" ctrllimited="true" ctrlrange="-1 1" kp="400"/>
    <position name="left_finger" joint="l_close" ctrllimited="true" ctrlrange="-1 1" kp="400"/>
  </actuator>
  <equality>
    <!-- Stiffer than metaworld's 0.02 s so the hand settles within ~2 mm of the target. -->
    <weld body1="mocap" body2="hand" solref="0.01 1" relpose="0 0 0 1 0 0 0"/>
  </equality>
</mujoco>
"""
