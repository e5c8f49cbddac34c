"""One thin rclpy node per file, and nothing else.

A node converts messages to arrays at its edge (`rig_ros.edge`) and calls `core`/`sim`/`robot`;
names and QoS come from `rig_ros.interfaces`. Each file has a `main` (a console script).
"""
