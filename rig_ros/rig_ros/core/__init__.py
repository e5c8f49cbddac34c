"""Pure PyTorch/NumPy RIG engine: no rclpy here."""
