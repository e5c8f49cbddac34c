"""Every name and QoS profile the graph speaks: the one place they are defined.

- `names`: topic, service, node/executable and model names (plain strings, no rclpy, so the
  graph description, the pure layers and the launch files can read them).
- `qos`: the QoS profiles of every publisher and subscription (rclpy).
A name or QoS profile written anywhere else in the package is a bug (test_interfaces.py checks).
"""
