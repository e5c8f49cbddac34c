"""Launch the RIG practice graph.

Robots practise towards imagined goals; one learner trains the VAE and the TD3 policy and
broadcasts their weights.

Built from `rig_ros.graph` (the graph described once); `rig practice` runs the same specs where
`ros2 launch` is not available. Example:

    ros2 launch rig_ros practice.launch.py task:=pusher robots:=2 run_dir:=/data/rig
"""

from typing import Any, Mapping

from rig_ros import graph

GRAPH = 'practice'
ARGUMENTS = graph.PRACTICE_ARGUMENTS


def generate_node_specs(arguments: Mapping[str, str]) -> list:
    """Return the graph's NodeSpecs for launch-argument strings (missing ones: defaults)."""
    return graph.graph_from_arguments(GRAPH, arguments)


def node_parameters(spec: graph.NodeSpec) -> list:
    """Return launch_ros `parameters`: the YAML files in order, then the spec's overrides."""
    return [*spec.param_files, dict(spec.parameters)] if spec.parameters else list(
        spec.param_files)


def _launch_nodes(context: Any, *args: Any, **kwargs: Any) -> list:
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    values = {argument.name: LaunchConfiguration(argument.name).perform(context)
              for argument in ARGUMENTS}
    return [
        Node(package=spec.package, executable=spec.executable, name=spec.name,
             namespace=spec.namespace, parameters=node_parameters(spec),
             remappings=list(spec.remappings), output='screen', emulate_tty=True)
        for spec in generate_node_specs(values)
    ]


def generate_launch_description():  # noqa: ANN201 - launch.LaunchDescription
    """Declare the graph's arguments and start its nodes once they are known."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    declared = [
        DeclareLaunchArgument(argument.name, default_value=argument.launch_default,
                              description=argument.description,
                              **({'choices': list(argument.choices)} if argument.choices
                                 else {}))
        for argument in ARGUMENTS
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_launch_nodes)])
