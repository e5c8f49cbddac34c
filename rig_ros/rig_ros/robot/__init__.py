"""The real Sawyer, pure Python (never rclpy): kinematics, safety, driver logic, backends.

Belongs here: what decides a joint command from an end-effector velocity and keeps the arm
safe, and the stand-ins that behave like intera for tests (`fake_arm`).
"""
