"""vae_encoder as a separate process: latents as the core computes them, weights broadcasts."""

import signal
import time

from builtin_interfaces.msg import Time
from factories import untrained_vae
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from sensor_msgs.msg import Image

from rig_msgs.msg import LatentState, Weights
from rig_msgs.srv import Encode
from rig_ros.core.encoder import vae_weights_payload
from rig_ros.core.preprocessing import preprocess, PreprocessConfig
from rig_ros.core.vae import ConvVAE, encode_images
from rig_ros.edge.image_msgs import array_to_image
from rig_ros.interfaces.qos import LATCHED_QOS, SENSOR_QOS
from rig_ros.nodes.vae_encoder import VAEEncoder

NAMESPACE = '/robot_0'
FLEET_WEIGHTS = ('rig/weights', '/rig/weights')  # the graph's remapping


def core_latent(vae: ConvVAE, image: np.ndarray, encoding: str = 'rgb8') -> np.ndarray:
    """Return what the core computes: preprocess to the VAE's size, then encode."""
    mean, _ = encode_images(vae, preprocess(image, PreprocessConfig(size=48), encoding)[None])
    return mean[0]


def weights_message(vae: ConvVAE, version: int, model_name: str = 'vae') -> Weights:
    config_json, data = vae_weights_payload(vae)
    return Weights(model_name=model_name, version=version, config_json=config_json,
                   safetensors=data)


def call(ros, wait_for, client, request, timeout=20.0):
    """Call a service with a bounded wait; return the response (None on timeout)."""
    future = client.call_async(request)
    if not wait_for(future.done, timeout=timeout):
        client.remove_pending_request(future)
        return None
    return future.result()


@pytest.mark.multiprocess
def test_encode_latents_and_weights_broadcasts(ros, start_node, wait_for, vae_checkpoint):
    vae = untrained_vae()  # the checkpoint's
    node = start_node('vae_encoder', namespace=NAMESPACE, remappings=[FLEET_WEIGHTS],
                      parameters={'vae_checkpoint': str(vae_checkpoint.parent)})
    client = ros.node.create_client(Encode, f'{NAMESPACE}/rig/encode')
    assert client.wait_for_service(timeout_sec=30.0), node.output
    rng = np.random.default_rng(0)

    # Any size and encoding: preprocessed and encoded exactly as the core does.
    bgr = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    response = call(ros, wait_for, client, Encode.Request(image=array_to_image(bgr, 'bgr8')))
    assert response is not None and response.success, node.output
    np.testing.assert_allclose(response.mean, core_latent(vae, bgr, 'bgr8'), atol=1e-5)
    assert len(response.log_variance) == 4 and response.model_version == 0

    # Malformed images: success=false with the reason; the node lives on.
    short = array_to_image(bgr, 'bgr8')
    short.data = bytes(short.data)[:-10]
    unknown = array_to_image(bgr, 'bgr8')
    unknown.encoding = 'yuv422'
    for image, problem in ((short, 'too short'), (unknown, 'unsupported image encoding'),
                           (Image(), 'unsupported image encoding')):
        response = call(ros, wait_for, client, Encode.Request(image=image))
        assert response is not None and not response.success, node.output
        assert problem in response.message and not response.mean

    # rig/image -> rig/latent with the frame's header.
    latents = ros.collect(LatentState, f'{NAMESPACE}/rig/latent', SENSOR_QOS)
    images = ros.publisher(Image, f'{NAMESPACE}/rig/image', SENSOR_QOS)
    assert ros.wait_for_subscribers(images), node.output
    frame = rng.integers(0, 256, (84, 84, 3), dtype=np.uint8)
    msg = array_to_image(frame)
    msg.header.stamp, msg.header.frame_id = Time(sec=5), 'camera'
    deadline = time.monotonic() + 20.0
    while not latents.messages and time.monotonic() < deadline:
        images.publish(msg)  # best effort: repeat until one gets through
        wait_for(lambda: latents.messages, timeout=0.2)
    assert latents.messages, node.output
    latent = latents.messages[0]
    assert (latent.header.stamp.sec, latent.header.frame_id) == (5, 'camera')
    np.testing.assert_allclose(latent.mean, core_latent(vae, frame), atol=1e-5)
    assert latent.model_version == 0

    # Weights broadcasts: other models ignored, a corrupt VAE refused (old weights kept),
    # a good one changes latents and the version.
    weights = ros.publisher(Weights, '/rig/weights', LATCHED_QOS)
    assert ros.wait_for_subscribers(weights), node.output
    weights.publish(weights_message(untrained_vae(1), 4, model_name='policy'))
    corrupt = weights_message(untrained_vae(1), 5)
    corrupt.safetensors = bytes(corrupt.safetensors)[:200]
    weights.publish(corrupt)
    assert wait_for(lambda: 'rejected VAE weights v5' in node.output), node.output
    response = call(ros, wait_for, client, Encode.Request(image=array_to_image(bgr, 'bgr8')))
    assert response.success and response.model_version == 0
    np.testing.assert_allclose(response.mean, core_latent(vae, bgr, 'bgr8'), atol=1e-5)
    new_vae = untrained_vae(2)
    weights.publish(weights_message(new_vae, 6))
    assert wait_for(lambda: 'VAE v6' in node.output), node.output
    response = call(ros, wait_for, client, Encode.Request(image=array_to_image(bgr, 'bgr8')))
    assert response.success and response.model_version == 6
    np.testing.assert_allclose(response.mean, core_latent(new_vae, bgr, 'bgr8'), atol=1e-5)
    assert not np.allclose(response.mean, core_latent(vae, bgr, 'bgr8'), atol=1e-3)

    assert node.stop(signal.SIGINT) == 0, node.output
    assert 'Traceback' not in node.output


@pytest.mark.multiprocess
def test_late_joiner_gets_latched_weights(ros, start_node, wait_for):
    weights = ros.publisher(Weights, '/rig/weights', LATCHED_QOS)
    vae = untrained_vae(3)
    weights.publish(weights_message(vae, 1))  # before the node exists
    node = start_node('vae_encoder', namespace=NAMESPACE, remappings=[FLEET_WEIGHTS])
    client = ros.node.create_client(Encode, f'{NAMESPACE}/rig/encode')
    assert client.wait_for_service(timeout_sec=30.0), node.output
    assert wait_for(lambda: 'VAE v1' in node.output), node.output
    grey = np.full((84, 84, 3), 90, np.uint8)
    response = call(ros, wait_for, client, Encode.Request(image=array_to_image(grey)))
    assert response.success and response.model_version == 1
    np.testing.assert_allclose(response.mean, core_latent(vae, grey), atol=1e-5)


def test_without_weights_nothing_is_encoded(ros_domain_id):
    """In process: requests fail with a reason, frames are dropped, nothing raises."""
    context = Context()
    rclpy.init(context=context)
    try:
        node = VAEEncoder(context=context)
        image = array_to_image(np.zeros((84, 84, 3), np.uint8))
        response = node.encode_callback(Encode.Request(image=image), Encode.Response())
        assert not response.success and response.message == 'no VAE weights yet'
        node.image_callback(image)
        corrupt = weights_message(untrained_vae(0), 1)
        corrupt.safetensors = b'garbage'
        node.weights_callback(corrupt)
        assert not node.encoder.ready
        node.weights_callback(weights_message(untrained_vae(0), 2))
        assert node.encoder.ready and node.encoder.version == 2
        node.destroy_node()
    finally:
        context.try_shutdown()


def test_unreadable_checkpoint_stops_the_node(start_node, tmp_path):
    (tmp_path / 'vae.safetensors').write_bytes(b'not a checkpoint')
    node = start_node('vae_encoder', parameters={'vae_checkpoint': str(tmp_path)})
    assert node.wait_exit(timeout=30.0) == 2, node.output
    assert 'cannot read VAE checkpoint' in node.output and 'Traceback' not in node.output
