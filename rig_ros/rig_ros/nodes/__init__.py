"""Thin rclpy nodes, one per file."""
