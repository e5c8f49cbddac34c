"""The edge between messages and arrays: sensor_msgs/Image <-> numpy.

Decoding and encoding follow cv_bridge's semantics (row `step` padding, byte order) and live in
`rig_ros.core.preprocessing`; this module only moves message fields in and out.
QoS profiles live in `rig_ros.interfaces.qos`.
"""

from typing import Optional

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from rig_ros.core.preprocessing import image_from_buffer, image_to_buffer


def image_to_array(msg: Image, copy: bool = True) -> np.ndarray:
    """Decode an Image message into an HxW (mono) or HxWxC array in its own encoding.

    copy=False: a read-only view of the message's data where its layout allows (see
    `image_from_buffer`), for callers that only read the frame while they hold the message.
    Raises ValueError naming the problem for an unknown encoding or a size/step/data mismatch.
    """
    return image_from_buffer(msg.data, msg.height, msg.width, msg.encoding, msg.step,
                             bool(msg.is_bigendian), copy)


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
