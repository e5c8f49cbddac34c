"""camera_pipeline: raw camera frames -> the VAE's 84x84 rgb8 images.

Subscribes `camera/image_raw` (rgb8, bgr8, rgba8, bgra8, mono8, 16-bit variants; any size),
crops and resizes with `rig_ros.core.preprocessing.preprocess`, and publishes `rig/image`
(rgb8, same header) with sensor-data QoS: only the newest frame is kept, stale ones dropped.
A malformed frame is logged (each distinct problem, throttled) and skipped; the node keeps running.

Parameters (`rig_ros.core.preprocessing.PreprocessConfig`, changeable at runtime):
size (int, 84), crop.top / crop.left / crop.height / crop.width (unset: whole frame),
crop.fractional (bool, false: pixels; true: fractions of the frame).
"""

from typing import Any, Optional, Sequence

from rclpy.node import Node
from sensor_msgs.msg import Image

from rig_ros.core.preprocessing import preprocess, PreprocessConfig
from rig_ros.edge.entry import run_node
from rig_ros.edge.image_msgs import array_to_image, image_to_array
from rig_ros.edge.log_limits import KeyedThrottle, suffix
from rig_ros.edge.params import ConfigParameters
from rig_ros.interfaces.names import CAMERA_IMAGE_TOPIC, CAMERA_PIPELINE, IMAGE_TOPIC
from rig_ros.interfaces.qos import SENSOR_QOS

ERROR_THROTTLE_S = 2.0
_CROP = ('first row of the crop', 'first column of the crop', 'rows in the crop',
         'columns in the crop')
DESCRIPTIONS = {
    **{f'crop.{name}': f'{text}: pixels, or a fraction of the frame with crop.fractional; '
       'leave crop.top/left/height/width unset to keep the whole frame'
       for name, text in zip(('top', 'left', 'height', 'width'), _CROP)},
    'crop.fractional': 'crop fields are fractions of the frame height/width, not pixels',
    'size': 'side of the square rgb8 output image in pixels',
}


class CameraPipeline(Node):
    """Crops and resizes camera frames into the VAE's input images."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(CAMERA_PIPELINE, **kwargs)
        self._preprocess_parameters = ConfigParameters(
            self, PreprocessConfig, descriptions=DESCRIPTIONS, on_change=self.config_callback)
        self._config: PreprocessConfig = self._preprocess_parameters.config
        self._frames = 0
        self._dropped = 0
        self._throttle = KeyedThrottle(ERROR_THROTTLE_S)
        self._publisher = self.create_publisher(Image, IMAGE_TOPIC, SENSOR_QOS)
        self._subscription = self.create_subscription(
            Image, CAMERA_IMAGE_TOPIC, self.image_callback, SENSOR_QOS)
        self.get_logger().info(
            f'{self._subscription.topic_name} -> {self._publisher.topic_name}: {self._config}')

    @property
    def config(self) -> PreprocessConfig:
        """The preprocessing in use."""
        return self._config

    def config_callback(self, config: PreprocessConfig) -> None:
        """Use new, already validated parameters from the next frame on."""
        self._config = config
        self.get_logger().info(f'preprocessing changed: {config}')

    def image_callback(self, msg: Image) -> None:
        """Preprocess one camera frame and publish it; log and drop a malformed one."""
        self._frames += 1
        try:
            output = self.convert(msg)
        except (ValueError, TypeError) as error:
            self._dropped += 1
            if self._throttle.due(str(error)):
                self.get_logger().error(
                    f'dropped malformed camera frame ({msg.width}x{msg.height} '
                    f'{msg.encoding!r}, step {msg.step}, {len(msg.data)} bytes): {error} '
                    f'[{self._dropped} of {self._frames} frames dropped so far]'
                    f'{suffix(self._throttle)}')
            return
        self._publisher.publish(output)

    def convert(self, msg: Image) -> Image:
        """Return the preprocessed rgb8 image with the frame's header.

        Raises ValueError naming the problem for a malformed frame.
        """
        image = preprocess(image_to_array(msg), self._config, msg.encoding)
        return array_to_image(image, 'rgb8', msg.header)


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the camera_pipeline node until SIGINT/SIGTERM."""
    return run_node(CameraPipeline, args)


if __name__ == '__main__':
    raise SystemExit(main())
