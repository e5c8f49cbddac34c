"""What both launch files share: the graph's NodeSpecs as launch_ros Nodes.

Pure Python at import; launch and launch_ros are imported inside the functions, so the specs
can be computed (and tested) where launch is not installed.
"""

import functools
from typing import Any, Mapping

from rig_ros import graph

ARGUMENTS = {'practice': graph.PRACTICE_ARGUMENTS, 'reach': graph.REACH_ARGUMENTS}


def node_specs(graph_name: str, arguments: Mapping[str, str]) -> list:
    """Return the graph's NodeSpecs for launch-argument strings (missing ones: defaults)."""
    return graph.graph_from_arguments(graph_name, arguments)


def node_parameters(spec: graph.NodeSpec) -> list:
    """Return launch_ros `parameters`: the YAML files in order, then the spec's overrides."""
    return [*spec.param_files, dict(spec.parameters)] if spec.parameters else list(
        spec.param_files)


def _launch_nodes(context: Any, *args: Any, graph_name: str, **kwargs: Any) -> list:
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    values = {argument.name: LaunchConfiguration(argument.name).perform(context)
              for argument in ARGUMENTS[graph_name]}
    return [
        Node(package=spec.package, executable=spec.executable, name=spec.name,
             namespace=spec.namespace, parameters=node_parameters(spec),
             remappings=list(spec.remappings), output='screen', emulate_tty=True)
        for spec in node_specs(graph_name, values)
    ]


def launch_description(graph_name: str):  # noqa: ANN201 - launch.LaunchDescription
    """Declare the graph's arguments and start its nodes once they are known."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    declared = [
        DeclareLaunchArgument(argument.name, default_value=argument.launch_default,
                              description=argument.description,
                              **({'choices': list(argument.choices)} if argument.choices
                                 else {}))
        for argument in ARGUMENTS[graph_name]
    ]
    nodes = functools.partial(_launch_nodes, graph_name=graph_name)
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
