"""The RIG engine, pure PyTorch/NumPy (never rclpy, MuJoCo or ROS messages).

Belongs here: models (VAE, TD3 actor/critics), replay and relabeling, rewards, the trainer
both hosts share, checkpoints, configs of algorithms, evaluation records, and the stages of a
graph run with their files (lifecycle, exploration frames, VAE pretraining, latent versions).
"""
