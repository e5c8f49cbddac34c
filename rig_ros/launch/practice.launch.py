"""Launch the RIG practice graph.

Robots practise towards imagined goals; one learner trains the VAE and the TD3 policy and
broadcasts their weights.

Built from `rig_ros.graph` (the graph described once); `rig practice` runs the same specs where
`ros2 launch` is not available. Example:

    ros2 launch rig_ros practice.launch.py task:=pusher robots:=2 run_dir:=/data/rig
"""

from rig_ros.run import launch_description

GRAPH = 'practice'


def generate_node_specs(arguments):  # noqa: ANN001, ANN201
    """Return the graph's NodeSpecs for launch-argument strings (missing ones: defaults)."""
    return launch_description.node_specs(GRAPH, arguments)


def generate_launch_description():  # noqa: ANN201 - launch.LaunchDescription
    """Declare the graph's arguments and start its nodes once they are known."""
    return launch_description.launch_description(GRAPH)
