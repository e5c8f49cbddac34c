"""vae_encoder: the robot's images -> VAE latents, and an encode service for goal images.

Subscribes `rig/image` (camera_pipeline's 84x84 rgb8 frames, sensor QoS) and publishes
`rig/latent` (rig_msgs/LatentState: the frame's header, mean, log_variance, model_version,
sensor QoS). Frames are resized to the VAE's input size (48 or 84, from its config) with
`rig_ros.core.preprocessing`, as in training. Serves `rig/encode` (rig_msgs/Encode): an image
of any size and common encoding, cropped with `request_crop` and resized; a bad image gets
success=false and the reason. Every reconstruction_period_s (0: never) the VAE's decoding of
the current frame's latent goes out on `rig/reconstruction` (sensor_msgs/Image rgb8, the
frame's header, sensor QoS) for viewers, from a timer: decoding right after a latent delayed
that frame's command (in a composed chain the policy waited for it). Malformed frames and
weights are logged as errors (each distinct problem, throttled) and dropped; the node keeps
running. In a composed chain (`robot_chain`) camera_pipeline hands each image over directly
(`image_hand_off`; the same image arriving over DDS is then skipped) and the policy gets each
latent directly, before it is published (`latent_listeners`). It runs on rclpy's
EventsExecutor (`rig_ros.edge.entry.FRAME_PATH_EXECUTOR`; RIG_ROS_EXECUTOR=single for the
SingleThreadedExecutor).

Weights: the `vae_checkpoint` file at startup (an unreadable one stops the node), then every
'vae' message of the latched `rig/weights` broadcast (WEIGHTS_QOS; 'policy' is ignored, other
model names are logged). A payload that does not fit is logged and the weights in use stay.
Until the first weights arrive nothing is published and encode requests fail with
'no VAE weights yet'.

Parameters (`rig_ros.core.encoder.EncoderConfig`, read-only): vae_checkpoint, request_crop.top
/ .left / .height / .width / .fractional, torch_threads, reconstruction_period_s.
"""

from typing import Any, Callable, Optional, Sequence

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header
import torch

from rig_msgs.msg import LatentState, Weights
from rig_msgs.srv import Encode
from rig_ros.core.encoder import EncoderConfig, LatentEncoder, WeightsError
from rig_ros.edge.entry import executor_factory, FRAME_PATH_EXECUTOR, run_node
from rig_ros.edge.image_msgs import array_to_image, image_to_array
from rig_ros.edge.log_limits import KeyedThrottle, suffix
from rig_ros.edge.params import declare_config, ParameterError
from rig_ros.edge.sequences import HandedOver
from rig_ros.edge.vae_weights import load_vae_weights
from rig_ros.interfaces.names import (
    ENCODE_SERVICE, IMAGE_TOPIC, LATENT_TOPIC, RECONSTRUCTION_TOPIC, VAE_ENCODER, WEIGHTS_TOPIC)
from rig_ros.interfaces.qos import SENSOR_QOS, WEIGHTS_QOS

THROTTLE_S = 5.0


class VAEEncoder(Node):
    """Encodes the robot's frames and requested images with the current VAE."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(VAE_ENCODER, **kwargs)
        self._config = declare_config(self, EncoderConfig, read_only=True)
        torch.set_num_threads(self._config.torch_threads)
        self._encoder = LatentEncoder()
        self._throttle = KeyedThrottle(THROTTLE_S)
        self._newest: Optional[tuple[np.ndarray, Header]] = None  # latent not yet decoded
        if self._config.vae_checkpoint:
            try:
                self._encoder.load_checkpoint(self._config.vae_checkpoint)
            except WeightsError as error:
                self.get_logger().error(f'parameter vae_checkpoint: {error}')
                raise ParameterError(str(error)) from None
            self._log_weights()
        # In-process members fed each published latent directly (robot_chain connects them).
        self.latent_listeners: list[Callable[[LatentState], None]] = []
        # Images a composed chain hands over in process, and their DDS copies to skip.
        self.image_hand_off = HandedOver(self.image_callback)
        self._publisher = self.create_publisher(LatentState, LATENT_TOPIC, SENSOR_QOS)
        self._reconstruction_publisher = (
            self.create_publisher(Image, RECONSTRUCTION_TOPIC, SENSOR_QOS)
            if self._config.reconstruction_period_s > 0 else None)
        if self._reconstruction_publisher is not None:
            self.create_timer(self._config.reconstruction_period_s,
                              self.publish_reconstruction)
        self._weights_subscription = self.create_subscription(
            Weights, WEIGHTS_TOPIC, self.weights_callback, WEIGHTS_QOS)
        self._image_subscription = self.create_subscription(
            Image, IMAGE_TOPIC, self.image_hand_off.taken, SENSOR_QOS)
        self._service = self.create_service(Encode, ENCODE_SERVICE, self.encode_callback)
        self.get_logger().info(
            f'{self._image_subscription.topic_name} -> {self._publisher.topic_name}, '
            f'service {self.resolve_service_name(ENCODE_SERVICE)}')
        if not self._encoder.ready:
            self.get_logger().info(f'waiting for VAE weights on '
                                   f'{self._weights_subscription.topic_name}')

    @property
    def image_topic(self) -> str:
        """The resolved topic of the images encoded."""
        return self._image_subscription.topic_name

    @property
    def latent_topic(self) -> str:
        """The resolved topic of the published latents."""
        return self._publisher.topic_name

    @property
    def encoder(self) -> LatentEncoder:
        """The VAE in use."""
        return self._encoder

    def _log_weights(self) -> None:
        config = self._encoder.config
        self.get_logger().info(
            f'VAE v{self._encoder.version} from {self._encoder.source}: '
            f'{config.image_size}x{config.image_size} images, {config.latent_dim} latents')

    def weights_callback(self, msg: Weights) -> None:
        """Load a 'vae' broadcast; keep the weights in use if it does not fit."""
        if not load_vae_weights(self, self._encoder, msg, self._throttle):
            return
        self._log_weights()

    def image_callback(self, msg: Image) -> None:
        """Encode one frame and publish its latent state; log and drop a bad frame."""
        if not self._encoder.ready:
            self.get_logger().warning('dropping frames: no VAE weights yet',
                                      throttle_duration_sec=THROTTLE_S)
            return
        try:
            mean, logvar = self._encoder.encode(image_to_array(msg), msg.encoding)
        except ValueError as error:
            if self._throttle.due(str(error)):
                self.get_logger().error(f'dropped malformed frame ({msg.width}x{msg.height} '
                                        f'{msg.encoding!r}, step {msg.step}, '
                                        f'{len(msg.data)} bytes): {error}'
                                        f'{suffix(self._throttle)}')
            return
        latent = LatentState(header=msg.header, mean=mean.tolist(),
                             log_variance=logvar.tolist(), model_version=self._encoder.version)
        for listener in self.latent_listeners:  # the policy's command before the DDS copy
            listener(latent)
        self._publisher.publish(latent)
        if self._reconstruction_publisher is not None:
            self._newest = (mean, msg.header)

    def publish_reconstruction(self) -> None:
        """Publish the decoding of the newest frame's latent, if not done yet (for viewers)."""
        if self._newest is None or self._reconstruction_publisher is None:
            return
        mean, header = self._newest
        self._newest = None
        image = self._encoder.decode(mean)
        self._reconstruction_publisher.publish(array_to_image(image, 'rgb8', header))

    def encode_callback(self, request: Encode.Request,
                        response: Encode.Response) -> Encode.Response:
        """Encode the request's image; success=false and the reason for a bad one."""
        image = request.image
        if not self._encoder.ready:
            response.success, response.message = False, 'no VAE weights yet'
            return response
        try:
            mean, logvar = self._encoder.encode(image_to_array(image), image.encoding,
                                                self._config.request_crop)
        except ValueError as error:
            response.success = False
            response.message = (f'cannot encode the {image.width}x{image.height} '
                                f'{image.encoding!r} image: {error}')
            if self._throttle.due(f'encode: {error}'):
                self.get_logger().warning(response.message + suffix(self._throttle))
            return response
        response.success, response.message = True, ''
        response.mean, response.log_variance = mean.tolist(), logvar.tolist()
        response.model_version = self._encoder.version
        return response


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the vae_encoder node until SIGINT/SIGTERM."""
    return run_node(VAEEncoder, args, make_executor=executor_factory(FRAME_PATH_EXECUTOR))


if __name__ == '__main__':
    raise SystemExit(main())
