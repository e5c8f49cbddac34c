"""ROS edge helpers the nodes and tools share (rclpy allowed, no node classes).

Belongs here: process entry and shutdown (`entry`), parameters from config dataclasses
(`params`), message <-> array conversion (`image_msgs`, `intera_msgs`, `stamps`), throttled logging
(`log_limits`), the shared rig/weights VAE loader (`vae_weights`), a node spun on a
background thread (`background`).
"""
