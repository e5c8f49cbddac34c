"""robot_chain: one robot's per-frame nodes composed in one process, on one executor.

The same node classes as the separate executables (`mujoco_sim`, `camera_pipeline`,
`vae_encoder`, `policy`), created in one process as ROS 2 composition does, so that a frame's
camera -> image -> latent -> command hops stay inside the process (no inter-process wakeups).
The graph starts it with `compose=True` (`rig_ros.graph`); by default every node runs apart.

The process runs a small container node (named by the launch file or runner, `robot_chain` in
the graph) that only reads the settings of its members:
- `nodes` (string array): the member executables, in start order; each becomes a node of that
  name in the container's namespace.
- `<member>.<parameter>`: the member's own overrides (the graph's per-node `parameters`); they
  win over the parameter files.
Every member reads the process's parameter files (`/**/policy` keys reach the member named
`policy` as they would reach a separate policy process) and the remappings of the command
line that are either global or node-specific for it (`-r policy:rig/transition:=/rig/...`).
A global `__node` remapping names the container only.

Inside the process the members hand their messages on directly (`connect_members`): each
camera_pipeline image goes to the policy's frame callback and to vae_encoder, each latent to
the policy, in the publishing callback, where the resolved topics match (a remapping that
separates them keeps them apart). Everything is still published on the topics for outside
subscribers; the members skip the DDS copies of what they were handed, and take messages of
other publishers on those topics as before. A frame's command is then sent within
camera_pipeline's callback: one wake-up per frame instead of three.
The members run on rclpy's EventsExecutor (`rig_ros.edge.entry.FRAME_PATH_EXECUTOR`;
RIG_ROS_EXECUTOR=single for the SingleThreadedExecutor).
"""

import sys
from typing import Any, Callable, Optional, Sequence

from rclpy.node import Node
from rclpy.parameter import Parameter

from rig_ros.edge.entry import executor_factory, FRAME_PATH_EXECUTOR, run_nodes
from rig_ros.edge.params import ParameterError
from rig_ros.interfaces.names import (
    CAMERA_PIPELINE, COMPOSABLE, MUJOCO_SIM, POLICY, ROBOT_CHAIN, VAE_ENCODER)

NODES_PARAMETER = 'nodes'


def member_class(executable: str) -> Callable[..., Node]:
    """Return the Node class of a member executable (imported on demand)."""
    if executable == MUJOCO_SIM:
        from rig_ros.nodes.mujoco_sim import MujocoSim
        return MujocoSim
    if executable == CAMERA_PIPELINE:
        from rig_ros.nodes.camera_pipeline import CameraPipeline
        return CameraPipeline
    if executable == VAE_ENCODER:
        from rig_ros.nodes.vae_encoder import VAEEncoder
        return VAEEncoder
    if executable == POLICY:
        from rig_ros.nodes.policy import PolicyNode
        return PolicyNode
    raise ValueError(f'{executable!r} cannot run in a robot_chain; '
                     f'members: {", ".join(COMPOSABLE)}')


def member_arguments(ros_args: Sequence[str], member: str, namespace: str) -> list[str]:
    """Return a member's own `--ros-args`: the namespace, parameter files and its remappings.

    `ros_args` are the process's arguments (as `rclpy.utilities.remove_ros_args` would drop
    them). Kept: every `--params-file`; `-r from:=to` unless `from` is a special name
    (`__node`, `__ns`); `-r <member>:from:=to`. Other flags (log levels, `-p`) are kept too.
    """
    result = ['--ros-args', '-r', f'__ns:={namespace}']
    for flag, value in _ros_argument_pairs(ros_args):
        if flag in ('-r', '--remap'):
            source = value.split(':=', 1)[0]
            node, _, name = source.rpartition(':')
            if (node and node != member) or name.startswith('__'):
                continue
        result += [flag, value]
    return result


def connect_members(members: Sequence[Node]) -> list[str]:
    """Hand camera_pipeline's images and vae_encoder's latents to the next members directly.

    Connects only where the publisher's resolved topic is the subscriber's. The policy gets a
    frame before vae_encoder encodes it, so the frame is there when the latent comes. Returns
    the connections made, as 'publisher -> subscriber (topic)' lines.
    """
    from rig_ros.nodes.camera_pipeline import CameraPipeline
    from rig_ros.nodes.policy import PolicyNode
    from rig_ros.nodes.vae_encoder import VAEEncoder
    cameras = [m for m in members if isinstance(m, CameraPipeline)]
    encoders = [m for m in members if isinstance(m, VAEEncoder)]
    policies = [m for m in members if isinstance(m, PolicyNode)]
    links: list[tuple[Node, Node, str, list, Callable[[Any], None]]] = []
    for camera in cameras:
        links += [(camera, policy, camera.image_topic, camera.image_listeners,
                   policy.frame_hand_off.deliver) for policy in policies
                  if policy.image_topic == camera.image_topic]
        links += [(camera, encoder, camera.image_topic, camera.image_listeners,
                   encoder.image_hand_off.deliver) for encoder in encoders
                  if encoder.image_topic == camera.image_topic]
    for encoder in encoders:
        links += [(encoder, policy, encoder.latent_topic, encoder.latent_listeners,
                   policy.latent_hand_off.deliver) for policy in policies
                  if policy.latent_topic == encoder.latent_topic]
    for _, _, _, listeners, callback in links:
        listeners.append(callback)
    return [f'{source.get_name()} -> {target.get_name()} ({topic})'
            for source, target, topic, _, _ in links]


def _ros_argument_pairs(args: Sequence[str]) -> list[tuple[str, str]]:
    """(flag, value) pairs of every `--ros-args ... [--]` section of a command line."""
    pairs = []
    inside = False
    items = list(args)
    index = 0
    while index < len(items):
        item = items[index]
        if item == '--ros-args':
            inside = True
        elif item == '--':
            inside = False
        elif inside and index + 1 < len(items):
            pairs.append((item, items[index + 1]))
            index += 1
        index += 1
    return pairs


class RobotChain(Node):
    """The container: reads its members and their overrides, then creates them."""

    def __init__(self, args: Sequence[str], **kwargs: Any) -> None:
        super().__init__(ROBOT_CHAIN, automatically_declare_parameters_from_overrides=True,
                         **kwargs)
        self._args = list(args)
        names = (self.get_parameter(NODES_PARAMETER).value
                 if self.has_parameter(NODES_PARAMETER) else None)
        if not names or not all(isinstance(name, str) for name in names):
            self.get_logger().error(f'parameter {NODES_PARAMETER!r} must list the member '
                                    f'executables ({", ".join(COMPOSABLE)}), got {names!r}')
            raise ParameterError(f'bad {NODES_PARAMETER!r}')
        unknown = [name for name in names if name not in COMPOSABLE]
        if unknown or len(set(names)) != len(names):
            self.get_logger().error(f'parameter {NODES_PARAMETER!r}: unknown or repeated '
                                    f'members {names!r}; members: {", ".join(COMPOSABLE)}')
            raise ParameterError(f'bad {NODES_PARAMETER!r}')
        self.member_names: list[str] = list(names)

    def member_overrides(self, member: str) -> list[Parameter]:
        """Return the `<member>.<parameter>` overrides as the member's own parameters."""
        return [Parameter(name, value=parameter.value) for name, parameter in
                self.get_parameters_by_prefix(member).items()]

    def create_members(self) -> list[Node]:
        """Create every member node; destroy the created ones if one refuses its parameters."""
        members: list[Node] = []
        namespace = self.get_namespace()
        try:
            for name in self.member_names:
                members.append(member_class(name)(
                    cli_args=member_arguments(self._args, name, namespace),
                    use_global_arguments=False,
                    parameter_overrides=self.member_overrides(name)))
        except ParameterError:
            for member in reversed(members):
                member.destroy_node()
            raise
        self.get_logger().info(
            f'composed {", ".join(m.get_fully_qualified_name() for m in members)} on one '
            'executor')
        links = connect_members(members)
        if links:
            self.get_logger().info(f'handed over in process: {"; ".join(links)}')
        return members


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run a robot chain's members in this process until SIGINT/SIGTERM."""
    argv = list(args) if args is not None else list(sys.argv)

    def make_nodes() -> list[Node]:
        chain = RobotChain(argv)
        try:
            return [chain, *chain.create_members()]
        except ParameterError:
            chain.destroy_node()
            raise
    return run_nodes(make_nodes, argv, make_executor=executor_factory(FRAME_PATH_EXECUTOR))


if __name__ == '__main__':
    raise SystemExit(main())
