"""The `rig/weights` edge shared by the nodes that hold a VAE (vae_encoder, goal_scheduler)."""

from rclpy.node import Node

from rig_msgs.msg import Weights
from rig_ros.core.encoder import LatentEncoder, WeightsError
from rig_ros.edge.log_limits import KeyedThrottle
from rig_ros.interfaces.names import KNOWN_MODELS, VAE_MODEL


def load_vae_weights(node: Node, encoder: LatentEncoder, msg: Weights,
                     throttle: KeyedThrottle) -> bool:
    """Load a 'vae' broadcast into `encoder`; return whether it was loaded.

    Other known models are ignored quietly, unknown ones logged; weights that do not fit are
    refused with a log line and the ones in use are kept.
    """
    if msg.model_name != VAE_MODEL:
        if msg.model_name not in KNOWN_MODELS and throttle.due(msg.model_name):
            node.get_logger().warning(f'ignored weights of unknown model '
                                      f'{msg.model_name!r} (v{msg.version})')
        return False
    try:
        encoder.load_payload(msg.safetensors, msg.version, msg.config_json)
    except WeightsError as error:
        node.get_logger().error(f'rejected VAE weights v{msg.version}, keeping '
                                f'v{encoder.version}: {error}')
        return False
    return True
