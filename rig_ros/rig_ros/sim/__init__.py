"""Simulated Sawyer on plain MuJoCo with metaworld's assets: no rclpy here."""

from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig

__all__ = ['SawyerSim', 'SawyerSimConfig']
