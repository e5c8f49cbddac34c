"""rig_ros: RIG (Reinforcement learning with Imagined Goals) for the Rethink Sawyer."""

__version__ = '0.1.0'
