"""What both launch files share: the graph's NodeSpecs as launch_ros Nodes.

Pure Python at import; launch and launch_ros are imported inside the functions, so the specs
can be computed (and tested) where launch is not installed.

Transports: every node gets the package's Fast DDS profile (`config/fastdds_rig.xml`: a
shared-memory segment that holds camera-sized frames, larger UDP socket buffers; see
docs/fleet.md) through FASTDDS_DEFAULT_PROFILES_FILE, unless the environment already chooses
Fast DDS transports (`transport_environment`, which the project's runner applies too). The
launch argument `fastdds_profile:=<file>` names another profile; `fastdds_profile:=none`
adds none (Fast DDS's defaults, or what the environment sets). It is read, not declared, so
that the declared arguments stay the graph's own.
"""

import functools
import os
import pathlib
from typing import Any, Mapping, Optional

from rig_ros import graph

ARGUMENTS = {'practice': graph.PRACTICE_ARGUMENTS, 'reach': graph.REACH_ARGUMENTS}
PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
# Set by a user who chose Fast DDS's builtin transports; an XML profile would override them.
BUILTIN_TRANSPORTS_VARIABLE = 'FASTDDS_BUILTIN_TRANSPORTS'
PROFILE_FILE = 'fastdds_rig.xml'
PROFILE_ARGUMENT = 'fastdds_profile'
NO_PROFILE = ('', 'none', 'default')  # `fastdds_profile:=none`: Fast DDS's own defaults
PROFILE_DESCRIPTION = (
    "Fast DDS profile file for every node: 'auto' (the package's config/fastdds_rig.xml unless "
    "FASTDDS_DEFAULT_PROFILES_FILE or FASTDDS_BUILTIN_TRANSPORTS is set), a file, or 'none' "
    "(Fast DDS's defaults)")
AUTO_PROFILE = 'auto'  # the launch argument's default: the package's profile unless env chooses


def fastdds_profile() -> Optional[str]:
    """Return the package's Fast DDS profile: the installed share's, else the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = pathlib.Path(get_package_share_directory(graph.PACKAGE)) / 'config'
        if (installed / PROFILE_FILE).is_file():
            return str(installed / PROFILE_FILE)
    except (ImportError, LookupError, KeyError, ValueError):
        pass
    source = pathlib.Path(__file__).resolve().parents[2] / 'config' / PROFILE_FILE
    return str(source) if source.is_file() else None


def transport_environment(env: Mapping[str, str],
                          profile: Optional[str] = None) -> dict[str, str]:
    """Return the variables to add to a node's environment `env` for its transports.

    `profile` None: the package's profile, unless `env` already names a profile file or
    builtin transports (the user's choice). Otherwise `profile` is the user's choice: a file
    to use, or one of NO_PROFILE: nothing added (Fast DDS's defaults, or what `env` sets).
    """
    if profile is not None:
        return {} if profile.strip().lower() in NO_PROFILE else {PROFILE_VARIABLE: profile}
    if PROFILE_VARIABLE in env or BUILTIN_TRANSPORTS_VARIABLE in env:
        return {}
    path = fastdds_profile()
    return {PROFILE_VARIABLE: path} if path is not None else {}


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
    profile = getattr(context, 'launch_configurations', {}).get(PROFILE_ARGUMENT)
    if profile is not None and profile.strip().lower() == AUTO_PROFILE:
        profile = None
    env = transport_environment(getattr(context, 'environment', os.environ), profile)
    return [
        Node(package=spec.package, executable=spec.executable, name=spec.name,
             namespace=spec.namespace, parameters=node_parameters(spec),
             remappings=list(spec.remappings), output='screen', emulate_tty=True,
             additional_env=dict(env), **respawn_arguments(spec))
        for spec in node_specs(graph_name, values)
    ]


def respawn_arguments(spec: graph.NodeSpec) -> dict[str, Any]:
    """Return launch_ros Node keywords for the spec's restarts (`graph.RespawnPolicy`).

    launch restarts a node after every exit but its own shutdown, each time after `delay_s`
    (no back-off, no limit). `on_node_exit` shuts the launch down instead when the runner would
    not restart either: a clean exit or refused parameters.
    """
    if spec.respawn is None:
        return {}
    return {'respawn': True, 'respawn_delay': spec.respawn.delay_s,
            'on_exit': functools.partial(on_node_exit, spec)}


def on_node_exit(spec: graph.NodeSpec, event: Any, context: Any) -> Optional[list]:
    """Say what becomes of a respawning node after its exit (its launch `on_exit`)."""
    from launch.actions import LogInfo, Shutdown

    if context.is_shutdown:
        return None
    name, code = spec.fully_qualified_name, event.returncode
    if code in graph.CLEAN_EXITS:
        return [Shutdown(reason=f'{name} exited cleanly (code {code}): stopping the graph')]
    if code == graph.EXIT_BAD_PARAMETERS:
        return [Shutdown(reason=f'{name} refused its parameters (code {code}), a restart '
                                'would fail the same way: stopping the graph')]
    return [LogInfo(msg=f'{name} exited with code {code}; restarting it in '
                        f'{spec.respawn.delay_s:g} s')]


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
    declared.append(DeclareLaunchArgument(
        PROFILE_ARGUMENT, default_value=AUTO_PROFILE, description=PROFILE_DESCRIPTION))
    nodes = functools.partial(_launch_nodes, graph_name=graph_name)
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
