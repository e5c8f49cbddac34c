"""Launch the RIG reach graph.

Goal images arriving on rig/goal_image are reached with a trained checkpoint (no exploration,
no learning).

Built from `rig_ros.graph` (the graph described once); `rig reach` runs the same specs where
`ros2 launch` is not available. Example:

    ros2 launch rig_ros reach.launch.py task:=pusher robots:=2 checkpoint:=/data/rig
"""

from rig_ros.run import launch_description

GRAPH = 'reach'


def generate_node_specs(arguments):  # noqa: ANN001, ANN201
    """Return the graph's NodeSpecs for launch-argument strings (missing ones: defaults)."""
    return launch_description.node_specs(GRAPH, arguments)


def generate_launch_description():  # noqa: ANN201 - launch.LaunchDescription
    """Declare the graph's arguments and start its nodes once they are known."""
    return launch_description.launch_description(GRAPH)
