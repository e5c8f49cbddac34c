"""rig_ros: RIG (Reinforcement learning with Imagined Goals) for the Rethink Sawyer.

Where things go (docs/architecture.md has the rule and the map):
- core/: pure algorithm (PyTorch/NumPy): VAE, TD3, replay, rewards, the RIG trainer.
- sim/: the simulated Sawyer (MuJoCo). robot/: the real Sawyer (kinematics, safety, intera).
- nodes/: one rclpy node per file, nothing else.
- edge/: ROS edge helpers the nodes share (entry, parameters, message conversion, logging).
- interfaces/: every topic/service/model name and every QoS profile.
- tasks.py: the task registry. graph.py: the node graph, described once.
- run/: a run of the graph (runner, session, operator, evaluation protocol).
- cli/: the `rig` commands and all argument parsing. report.py: all plots.
"""

__version__ = '0.1.0'
