"""camera_pipeline: raw camera frames -> the VAE's 84x84 rgb8 images.

Subscribes `camera/image_raw` (rgb8, bgr8, rgba8, bgra8, mono8, 16-bit variants; any size),
crops and resizes with `rig_ros.core.preprocessing.preprocess`, and publishes `rig/image`
(rgb8, same header) with sensor-data QoS.
A malformed frame is logged (each distinct problem, throttled) and skipped; the node keeps running.

Always the newest frame: the subscription keeps the last frame only (keep last 1), so a frame
that arrives while one is being processed replaces the one waiting, and the node never works
through a backlog of stale frames. Frames it never saw are counted from the publisher's
sequence numbers (skipped for a newer one, or lost by the transport) and logged at most every
10 s with the time a frame takes here; on shutdown one line sums up the frames processed,
skipped and malformed.

In a composed chain (`robot_chain`) the next members also get each image directly, in
process, before it is published (`image_listeners`: the command leaves before the DDS
copies); the time a frame takes here then includes theirs (encoding, the policy's decision).
It runs on rclpy's EventsExecutor (`rig_ros.edge.entry.FRAME_PATH_EXECUTOR`;
RIG_ROS_EXECUTOR=single for the SingleThreadedExecutor).

Parameters (`rig_ros.core.preprocessing.PreprocessConfig`, changeable at runtime):
size (int, 84), crop.top / crop.left / crop.height / crop.width (unset: whole frame),
crop.fractional (bool, false: pixels; true: fractions of the frame).
Read-only, standard ROS QoS override: `qos_overrides./<ns>/camera/image_raw.subscription.
reliability` (best_effort, the default, matches every camera publisher; reliable receives
only from reliable publishers, which then resend what the transport lost).
"""

import time
from typing import Any, Callable, Optional, Sequence

from rclpy.node import Node
from rclpy.qos import QoSPolicyKind
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import Image

from rig_ros.core.preprocessing import preprocess, PreprocessConfig
from rig_ros.edge.entry import executor_factory, FRAME_PATH_EXECUTOR, run_node
from rig_ros.edge.image_msgs import array_to_image, image_to_array
from rig_ros.edge.log_limits import KeyedThrottle, suffix
from rig_ros.edge.params import ConfigParameters
from rig_ros.edge.sequences import SequenceGaps, with_message_info
from rig_ros.interfaces.names import CAMERA_IMAGE_TOPIC, CAMERA_PIPELINE, IMAGE_TOPIC
from rig_ros.interfaces.qos import SENSOR_QOS

ERROR_THROTTLE_S = 2.0
SKIP_LOG_PERIOD_S = 10.0
MAX_PUBLISHERS = 16  # publishers whose sequence numbers are followed
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
        self._gaps = SequenceGaps(MAX_PUBLISHERS)
        self._period = {'frames': 0, 'skipped': 0, 'busy_s': 0.0, 'start': time.monotonic()}
        self._throttle = KeyedThrottle(ERROR_THROTTLE_S)
        # In-process members fed each published image directly (robot_chain connects them).
        self.image_listeners: list[Callable[[Image], None]] = []
        self._publisher = self.create_publisher(Image, IMAGE_TOPIC, SENSOR_QOS)
        self._subscription = self.create_subscription(
            Image, CAMERA_IMAGE_TOPIC, with_message_info(self.frame_callback), SENSOR_QOS,
            qos_overriding_options=QoSOverridingOptions([QoSPolicyKind.RELIABILITY]))
        self.get_logger().info(
            f'{self._subscription.topic_name} -> {self._publisher.topic_name}: {self._config}')

    @property
    def image_topic(self) -> str:
        """The resolved topic of the published images."""
        return self._publisher.topic_name

    @property
    def config(self) -> PreprocessConfig:
        """The preprocessing in use."""
        return self._config

    def config_callback(self, config: PreprocessConfig) -> None:
        """Use new, already validated parameters from the next frame on."""
        self._config = config
        self.get_logger().info(f'preprocessing changed: {config}')

    @property
    def skipped(self) -> int:
        """Frames never processed: replaced by a newer one while waiting, or lost in transport."""
        return self._gaps.missed

    def frame_callback(self, msg: Image, info: MessageInfo) -> None:
        """Count the frames skipped since the previous one, then process this one."""
        started = time.monotonic()
        self.count_skipped(info.get('publisher_gid'), info.get('publication_sequence_number'))
        self.image_callback(msg)
        period = self._period
        period['frames'] += 1
        period['busy_s'] += time.monotonic() - started
        if started - period['start'] >= SKIP_LOG_PERIOD_S:
            if period['skipped']:
                self.get_logger().info(
                    f'skipped {period["skipped"]} of {period["skipped"] + period["frames"]} '
                    f'camera frames in the last {started - period["start"]:.0f} s (a newer '
                    'frame replaced them while one was processed, or the transport lost them); '
                    f'a frame takes {1e3 * period["busy_s"] / period["frames"]:.1f} ms here')
            self._period = {'frames': 0, 'skipped': 0, 'busy_s': 0.0, 'start': started}

    def count_skipped(self, gid: Optional[Any], sequence: Optional[int]) -> int:
        """Note a frame's publisher sequence number; return how many frames were skipped."""
        skipped = self._gaps.note(gid, sequence)
        self._period['skipped'] += skipped
        return skipped

    def on_shutdown(self) -> None:
        """Sum up the frames seen."""
        self.get_logger().info(
            f'camera frames: {self._frames - self._dropped} processed, '
            f'{self._gaps.missed} skipped '
            f'(replaced by newer ones or lost in transport), {self._dropped} malformed')

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
        # In-process members first: the frame's command should not wait for DDS copies.
        for listener in self.image_listeners:
            listener(output)
        self._publisher.publish(output)

    def convert(self, msg: Image) -> Image:
        """Return the preprocessed rgb8 image with the frame's header.

        Raises ValueError naming the problem for a malformed frame.
        """
        # A view of the frame: preprocess only reads it, and the output is a new array.
        image = preprocess(image_to_array(msg, copy=False), self._config, msg.encoding)
        return array_to_image(image, 'rgb8', msg.header)


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the camera_pipeline node until SIGINT/SIGTERM."""
    return run_node(CameraPipeline, args, make_executor=executor_factory(FRAME_PATH_EXECUTOR))


if __name__ == '__main__':
    raise SystemExit(main())
