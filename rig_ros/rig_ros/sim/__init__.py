"""The simulated Sawyer on plain MuJoCo with metaworld's assets (never rclpy).

Belongs here: scenes, end-effector velocity control, rendering, ground truth, the lockstep /
real-time driver. Which tasks exist is `rig_ros.tasks`.
"""

from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig

__all__ = ['SawyerSim', 'SawyerSimConfig']
