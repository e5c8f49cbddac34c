"""Real Sawyer kinematics, safety and intera backends: no rclpy here."""
