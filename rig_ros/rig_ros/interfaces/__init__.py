"""Every name and QoS profile the graph speaks: the one place they are defined.

- `names`: topic, service, node/executable and model names (plain strings, no rclpy, so the
  graph description, the pure layers and the launch files can read them).
- `qos`: the QoS profiles of every publisher and subscription (rclpy).
A topic-name string literal anywhere else in the package is a bug (a test checks).
"""
