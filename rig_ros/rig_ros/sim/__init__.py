"""Simulated Sawyer on plain MuJoCo with metaworld's assets: no rclpy here."""
