"""MJCF for the RIG Sawyer scenes, built at run time around metaworld's installed assets."""

import pathlib

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
