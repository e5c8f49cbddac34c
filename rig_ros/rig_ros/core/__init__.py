"""The RIG engine, pure PyTorch/NumPy (never rclpy, MuJoCo or ROS messages).

Belongs here: models (VAE, TD3 actor/critics), replay and relabeling, rewards, the trainer
both hosts share, checkpoints, configs of algorithms, evaluation records.
"""
