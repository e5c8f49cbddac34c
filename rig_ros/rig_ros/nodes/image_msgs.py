"""The edge between messages and arrays: sensor_msgs/Image <-> numpy, and the graph's QoS.

Decoding and encoding follow cv_bridge's semantics (row `step` padding, byte order) and live in
`rig_ros.core.preprocessing`; this module only moves message fields in and out.

QoS profiles, one place for the whole graph:
- SENSOR_QOS: camera/image_raw, rig/image, rig/latent. Best effort, keep last 1: a slow
  subscriber sees the newest frame, stale frames are dropped, never queued.
- LATCHED_QOS: rig/goal, rig/weights. Reliable, transient local, depth 1: a late joiner gets
  the last message.
- WEIGHTS_QOS: subscriptions to rig/weights. Latched like LATCHED_QOS but 4 deep: the
  learner keeps one latched writer per model ('vae', 'policy'), a late joiner receives the
  last message of each at once, and a depth-1 reader loses all but one (measured).
- COMMAND_QOS: ee_velocity. Reliable, keep last 1: only the newest command matters.
- TRANSITION_QOS: rig/transition. Reliable with a deep queue: the learner should see every
  step, a slow learner applies back-pressure instead of losing data.
"""

from typing import Optional

import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from rig_ros.core.preprocessing import image_from_buffer, image_to_buffer

SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
WEIGHTS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=4,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
TRANSITION_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                            reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.VOLATILE)


def image_to_array(msg: Image) -> np.ndarray:
    """Decode an Image message into an HxW (mono) or HxWxC array in its own encoding.

    Raises ValueError naming the problem for an unknown encoding or a size/step/data mismatch.
    """
    return image_from_buffer(msg.data, msg.height, msg.width, msg.encoding, msg.step,
                             bool(msg.is_bigendian))


def array_to_image(image: np.ndarray, encoding: str = 'rgb8',
                   header: Optional[Header] = None) -> Image:
    """Encode an array as an Image message (little-endian, unpadded rows)."""
    data, step = image_to_buffer(image, encoding)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = step
    msg.data = data
    return msg
