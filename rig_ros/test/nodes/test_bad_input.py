"""Bad input for every subscription and service of every node: logged, survived, nothing lost.

Each node starts once per module (the cases of all its endpoints go to the same process, in
file order) on a domain of its own. For every case the node must log a line saying what was
wrong, keep running, and still process a good message afterwards; counters that count good
data (the learner's) must not move for a bad message. Bad parameters and corrupt checkpoints
at startup must stop a node with exit code 2 and a message naming the culprit, no traceback.
"""

import dataclasses
import json
import os
import pathlib
import re
import signal
import time
from typing import Any, Callable, Iterator, Optional

from factories import save_vae, untrained_vae
from geometry_msgs.msg import PointStamped, TwistStamped
import harness
from harness import wait_for
import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
import torch

from rig_msgs.msg import Goal, LatentState, Transition, Weights
from rig_msgs.srv import Encode
from rig_ros.core.checkpoints import save_checkpoint, serialize_state
from rig_ros.core.encoder import vae_weights_payload
from rig_ros.core.policy_runtime import encode_policy_weights
from rig_ros.core.td3 import GoalConditionedTD3, TD3Config
from rig_ros.core.vae import ConvVAE
from rig_ros.edge.image_msgs import array_to_image
from rig_ros.interfaces.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, TRANSITION_QOS

pytestmark = pytest.mark.slow

DIM = 4
LOG_TIMEOUT_S = 20.0


def vae_weights(vae: ConvVAE, version: int, model_name: str = 'vae') -> Weights:
    config_json, data = vae_weights_payload(vae)
    return Weights(model_name=model_name, version=version, config_json=config_json,
                   safetensors=data)


def nan_vae_weights(version: int) -> Weights:
    vae = untrained_vae(5)
    state = vae.state_dict()
    next(value for value in state.values() if value.is_floating_point()).fill_(float('nan'))
    config = dataclasses.asdict(vae.config)
    return Weights(model_name='vae', version=version, config_json=json.dumps(config),
                   safetensors=serialize_state(state, config))


def policy_weights(version: int, action_dim: int = 2, nan: bool = False,
                   model_name: str = 'policy') -> Weights:
    agent = GoalConditionedTD3(DIM, DIM, action_dim, TD3Config(hidden_sizes=(16, 16)))
    if nan:
        with torch.no_grad():
            next(agent.actor.parameters()).fill_(float('nan'))
    config_json, data = encode_policy_weights(agent)
    return Weights(model_name=model_name, version=version, config_json=config_json,
                   safetensors=data)


def raw_image(height: int, width: int, encoding: str, step: int, size: int) -> Image:
    return Image(height=height, width=width, encoding=encoding, step=step,
                 data=bytes(size))


def malformed_images() -> list[tuple[str, Image, str]]:
    """(case, image, the error the node must log) for images no node can decode."""
    return [
        ('data shorter than step x height', raw_image(10, 10, 'rgb8', 30, 200),
         r'10x10 .*holds 200|200 bytes|data'),
        ('step shorter than a row', raw_image(10, 10, 'rgb8', 12, 300), 'step 12'),
        ('unknown encoding', raw_image(4, 4, 'yuv_fancy', 12, 48), 'yuv_fancy'),
        ('zero size', raw_image(0, 0, 'rgb8', 0, 0), 'size must be positive'),
    ]


def send_big_frames(publisher: Any, node: Any) -> None:
    """Send a valid 4000x4000 frame a few times; the node must survive it.

    Best-effort delivery of 16 MB messages is unreliable over Fast DDS here (with and without
    LARGE_DATA), so whether it arrives is not asserted; the service test requires it.
    """
    frame = big_frame()
    for _ in range(3):
        publisher.publish(frame)
        time.sleep(0.3)
    assert node.returncode is None, node.output[-3000:]


def big_frame(encoding: str = 'mono8') -> Image:
    """Return a valid 4000x4000 frame (16 MB mono8, 48 MB rgb8)."""
    channels = 3 if encoding == 'rgb8' else 1
    image = np.zeros((4000, 4000, channels)[:3 if channels > 1 else 2], np.uint8)
    image[::50] = 200
    return array_to_image(image, encoding)


class Harness:
    """The module's ROS domain, test node and node processes (started once each)."""

    def __init__(self, root: pathlib.Path, vae_file: pathlib.Path) -> None:
        self.root = root
        self._env = pytest.MonkeyPatch()
        self.domain, self._lock = harness.isolate_domain(self._env)
        # 4000x4000 frames cross DDS in one piece only with the large-data transports.
        self._env.setenv('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')
        self.ros = harness.RosHarness(self.domain)
        self.nodes: dict[str, Any] = {}
        self.vae_file = vae_file
        self._starter = harness.NodeStarter()
        self.resets = 0

    def start(self, key: str, executable: str, namespace: str,
              parameters: dict) -> Any:
        if key not in self.nodes:
            self.nodes[key] = self._starter.start(executable, namespace=namespace,
                                                  parameters=parameters)
        return self.nodes[key]

    def reset_callback(self, request: Trigger.Request,
                       response: Trigger.Response) -> Trigger.Response:
        self.resets += 1
        response.success, response.message = True, 'reset'
        return response

    def close(self) -> None:
        self._starter.close()
        self.ros.close()
        self._env.undo()
        self._lock.close()


@pytest.fixture(scope='module')
def rig(tmp_path_factory: pytest.TempPathFactory,
        vae_checkpoint: pathlib.Path) -> Iterator[Harness]:
    """Start nothing yet: nodes start on first use and stop at the end of the module."""
    rig = Harness(tmp_path_factory.mktemp('bad_input'), vae_checkpoint)
    try:
        yield rig
    finally:
        rig.close()


def expect_log(node: Any, pattern: str, send: Callable[[], None], case: str,
               timeout: float = LOG_TIMEOUT_S) -> None:
    """Send (again every 0.5 s: best-effort topics) until `pattern` appears in new output."""
    mark = len(node.output)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        send()
        if wait_for(lambda: re.search(pattern, node.output[mark:], re.S), timeout=0.5):
            return
        assert node.returncode is None, f'{case}: the node died\n{node.output[-3000:]}'
    raise AssertionError(f'{case}: no log line matching {pattern!r}\n{node.output[-3000:]}')


def stamp(rig: Harness) -> Any:
    return rig.ros.node.get_clock().now().to_msg()


def call(client: Any, request: Any, timeout: float = LOG_TIMEOUT_S) -> Any:
    future = client.call_async(request)
    if not wait_for(future.done, timeout=timeout):
        client.remove_pending_request(future)
        return None
    return future.result()


def assert_alive(node: Any) -> None:
    assert node.returncode is None, node.output[-3000:]
    assert 'Traceback' not in node.output, node.output[-3000:]


# Nodes, started once per module.

def camera_node(rig: Harness) -> Any:
    return rig.start('camera', 'camera_pipeline', '/cam', {'size': 84})


def encoder_node(rig: Harness) -> Any:
    return rig.start('encoder', 'vae_encoder', '/bad', {
        'vae_checkpoint': str(rig.vae_file), 'reconstruction_period_s': 0.2})


def scheduler_node(rig: Harness) -> Any:
    if 'scheduler' not in rig.nodes:
        rig.ros.node.create_service(Trigger, '/bad/robot/reset', rig.reset_callback)
    return rig.start('scheduler', 'goal_scheduler', '/bad', {
        'vae_checkpoint': str(rig.vae_file), 'robot_id': 'bad', 'episode_length': 5,
        'retry_period_s': 0.2})


def policy_node(rig: Harness) -> Any:
    return rig.start('policy', 'policy', '/pol', {
        'start_active': True, 'robot_id': 'pol', 'control_rate_hz': 20.0,
        'stale_after_s': 1.0})


def learner_node(rig: Harness, vae_checkpoint: pathlib.Path) -> Any:
    # With a VAE it practises at once (without one it would explore and refuse these).
    return rig.start('learner', 'learner', '/learn', {
        'run_dir': str(rig.root / 'learner'), 'tensorboard': False, 'status_period_s': 0.3,
        'vae_checkpoint': str(vae_checkpoint), 'td3.hidden_sizes': [16, 16],
        'td3.learning_starts': 1000})


def sim_node(rig: Harness) -> Any:
    return rig.start('sim', 'mujoco_sim', '/sim', {'task': 'reacher', 'lockstep': True})


# One test per subscription and service.

@pytest.mark.multiprocess
def test_camera_pipeline_camera_image_raw(rig):
    node = camera_node(rig)
    out = rig.ros.collect(Image, '/cam/rig/image', SENSOR_QOS)
    frames = rig.ros.publisher(Image, '/cam/camera/image_raw', SENSOR_QOS)
    assert rig.ros.wait_for_subscribers(frames), node.output
    for case, image, error in malformed_images():
        expect_log(node, f'dropped malformed camera frame.*(?:{error})',
                   lambda: frames.publish(image), case)
    send_big_frames(frames, node)
    for case, image in (('37x91 mono8', array_to_image(np.full((37, 91), 9, np.uint8),
                                                       'mono8')),):
        image.header.stamp = stamp(rig)
        sent = image.header.stamp

        def received() -> bool:
            frames.publish(image)
            return any(m.header.stamp == sent and (m.width, m.height) == (84, 84)
                       for m in out.messages)
        assert wait_for(received, timeout=LOG_TIMEOUT_S, interval=0.5), (case, node.output)
    assert_alive(node)


@pytest.mark.multiprocess
def test_vae_encoder_rig_image(rig):
    node = encoder_node(rig)
    latents = rig.ros.collect(LatentState, '/bad/rig/latent', SENSOR_QOS)
    reconstructions = rig.ros.collect(Image, '/bad/rig/reconstruction', SENSOR_QOS)
    frames = rig.ros.publisher(Image, '/bad/rig/image', SENSOR_QOS)
    assert rig.ros.wait_for_subscribers(frames), node.output
    for case, image, error in malformed_images():
        expect_log(node, f'dropped malformed frame.*(?:{error})', lambda: frames.publish(image),
                   case)
    send_big_frames(frames, node)
    for case, image in (('bgra8 30x50', array_to_image(np.full((30, 50, 4), 80, np.uint8),
                                                       'bgra8')),):
        image.header.stamp = stamp(rig)
        sent = image.header.stamp

        def encoded() -> bool:
            frames.publish(image)
            return any(m.header.stamp == sent and len(m.mean) == DIM
                       and np.isfinite(m.mean).all() for m in latents.messages)
        assert wait_for(encoded, timeout=LOG_TIMEOUT_S, interval=0.5), (case, node.output)
    # The VAE's view of the frames, for viewers: 48x48 rgb8, the frame's header.
    assert wait_for(lambda: reconstructions.messages), node.output
    assert (reconstructions.messages[-1].width, reconstructions.messages[-1].encoding) == (
        48, 'rgb8')
    assert_alive(node)


@pytest.mark.multiprocess
def test_vae_encoder_rig_encode(rig):
    node = encoder_node(rig)
    client = rig.ros.node.create_client(Encode, '/bad/rig/encode')
    assert client.wait_for_service(timeout_sec=harness.DISCOVERY_TIMEOUT_S), node.output
    for case, image, error in malformed_images():
        mark = len(node.output)
        response = call(client, Encode.Request(image=image))
        assert response is not None and not response.success, case
        assert re.search(error, response.message), (case, response.message)
        assert wait_for(lambda: 'cannot encode' in node.output[mark:]), (case, node.output)
    for case, image in (('4000x4000 mono8', big_frame()),
                        ('mono8 37x91', array_to_image(np.full((37, 91), 9, np.uint8),
                                                       'mono8')),
                        ('bgra8', array_to_image(np.full((20, 33, 4), 9, np.uint8), 'bgra8'))):
        response = call(client, Encode.Request(image=image))
        assert response is not None and response.success, (case, response)
        assert len(response.mean) == DIM and np.isfinite(response.mean).all()
    assert_alive(node)


def bad_vae_weights() -> list[tuple[str, Weights, str]]:
    return [
        ('random bytes', Weights(model_name='vae', version=11,
                                 safetensors=list(np.random.default_rng(0).integers(
                                     0, 256, 4096, dtype=np.uint8).tobytes()),
                                 config_json='{}'), 'rejected VAE weights v11'),
        ('truncated', Weights(model_name='vae', version=12,
                              safetensors=vae_weights(untrained_vae(1), 12).safetensors[:5000],
                              config_json=vae_weights(untrained_vae(1), 12).config_json),
         'rejected VAE weights v12.*truncated'),
        ('other latent size', vae_weights(untrained_vae(2, latent_dim=6), 13),
         'rejected VAE weights v13.*6 latents'),
        ('NaN weights', nan_vae_weights(14), 'rejected VAE weights v14.*NaN'),
        ('config not JSON', Weights(model_name='vae', version=15, config_json='{oops',
                                    safetensors=vae_weights(untrained_vae(1), 15).safetensors),
         'rejected VAE weights v15.*not JSON'),
        ('unknown model name', vae_weights(untrained_vae(1), 16, model_name='vea'),
         "unknown model 'vea'"),
    ]


@pytest.mark.multiprocess
@pytest.mark.parametrize('which', ['vae_encoder', 'goal_scheduler'])
def test_rig_weights_vae(rig, which):
    node = encoder_node(rig) if which == 'vae_encoder' else scheduler_node(rig)
    weights = rig.ros.publisher(Weights, '/bad/rig/weights', LATCHED_QOS)
    assert wait_for(lambda: weights.get_subscription_count() >= 1), node.output
    assert wait_for(lambda: 'VAE v0 from file' in node.output), node.output
    version = 30 if which == 'vae_encoder' else 40
    for case, msg, error in bad_vae_weights():
        mark = len(node.output)
        weights.publish(msg)
        assert wait_for(lambda: re.search(error, node.output[mark:]), LOG_TIMEOUT_S), (
            case, node.output[-3000:])
    weights.publish(vae_weights(untrained_vae(3), version))
    assert wait_for(lambda: f'VAE v{version} from weights message' in node.output), (
        node.output[-3000:])
    assert_alive(node)


@pytest.mark.multiprocess
def test_policy_rig_latent_and_rig_goal(rig):
    node = policy_node(rig)
    velocities = rig.ros.collect(TwistStamped, '/pol/ee_velocity', COMMAND_QOS)
    latents = rig.ros.publisher(LatentState, '/pol/rig/latent', SENSOR_QOS)
    goals = rig.ros.publisher(Goal, '/pol/rig/goal', LATCHED_QOS)
    assert rig.ros.wait_for_subscribers(latents) and rig.ros.wait_for_subscribers(goals)

    def goal(mean, episode_id: int) -> Goal:
        msg = Goal(mean=list(mean), episode_id=episode_id, episode_length=0, explore=True)
        msg.header.stamp = stamp(rig)
        return msg

    def latent(mean) -> Callable[[], None]:
        def send() -> None:
            msg = LatentState(mean=list(mean))
            msg.header.stamp = stamp(rig)
            latents.publish(msg)
        return send

    def moving() -> bool:
        latent([0.1] * DIM)()
        recent = velocities.messages[-3:]
        return bool(recent) and any(m.twist.linear.x or m.twist.linear.y for m in recent)

    def still() -> bool:
        recent = velocities.messages[-2:]
        return len(recent) == 2 and all(
            (m.twist.linear.x, m.twist.linear.y) == (0.0, 0.0) for m in recent)

    goals.publish(goal([0.5] * DIM, 1))
    assert wait_for(moving, interval=0.1), node.output  # exploring at random: it moves
    cases = [
        ('NaN latent', latent([0.1, float('nan'), 0.0, 0.0]), r'bad latent: non-finite'),
        ('inf latent', latent([float('inf'), 0.1, 0.0, 0.0]), r'bad latent: non-finite.*inf'),
        ('latent of 3', latent([0.1, 0.2, 0.3]), r'bad latent: 3 values'),
    ]
    for case, send, error in cases:
        expect_log(node, error, send, case)
        assert wait_for(still), (case, node.output[-2000:])
        assert wait_for(moving, interval=0.1), (case, node.output[-2000:])
    for episode_id, (case, mean, error) in enumerate((
            ('NaN goal', [float('nan')] * DIM, 'bad goal of episode 2: non-finite'),
            ('goal of 6', [0.0] * 6, 'bad goal of episode 3: 6 values')), 2):
        expect_log(node, error, lambda: goals.publish(goal(mean, episode_id)), case)
        assert wait_for(still, interval=0.1), (case, node.output[-2000:])
    goals.publish(goal([0.2] * DIM, 9))
    assert wait_for(moving, interval=0.1), node.output[-2000:]
    assert_alive(node)


@pytest.mark.multiprocess
def test_policy_rig_weights(rig):
    node = policy_node(rig)
    weights = rig.ros.publisher(Weights, '/pol/rig/weights', LATCHED_QOS)
    assert wait_for(lambda: weights.get_subscription_count() >= 1), node.output
    cases = [
        ('random bytes', Weights(model_name='policy', version=11,
                                 safetensors=os.urandom(2048)), 'version 11'),
        ('action size 3', policy_weights(12, action_dim=3), 'version 12.*3'),
        ('NaN weights', policy_weights(13, nan=True), 'version 13.*NaN'),
        ('truncated', Weights(model_name='policy', version=14,
                              safetensors=policy_weights(14).safetensors[:300]),
         'version 14.*truncated'),
        ('unknown model name', policy_weights(15, model_name='polcy'), "unknown model 'polcy'"),
    ]
    for case, msg, error in cases:
        mark = len(node.output)
        weights.publish(msg)
        assert wait_for(lambda: re.search(error, node.output[mark:]), LOG_TIMEOUT_S), (
            case, node.output[-3000:])
    weights.publish(policy_weights(16))
    assert wait_for(lambda: 'policy weights version 16 loaded' in node.output), node.output
    assert_alive(node)


@pytest.mark.multiprocess
def test_policy_activate(rig):
    node = policy_node(rig)
    client = rig.ros.node.create_client(SetBool, '/pol/policy/activate')
    assert client.wait_for_service(timeout_sec=harness.DISCOVERY_TIMEOUT_S), node.output
    for data, message in ((False, 'deactivated'), (False, 'deactivated (no change)'),
                          (True, 'activated'), (True, 'activated (no change)')):
        response = call(client, SetBool.Request(data=data))
        assert response is not None and response.success and response.message == message
    assert_alive(node)


@pytest.mark.multiprocess
def test_goal_scheduler_rig_transition(rig):
    node = scheduler_node(rig)
    goals = rig.ros.collect(Goal, '/bad/rig/goal', LATCHED_QOS)
    ends = rig.ros.publisher(Transition, '/bad/rig/transition', TRANSITION_QOS)
    assert rig.ros.wait_for_subscribers(ends), node.output
    assert wait_for(lambda: goals.messages), node.output

    def end(episode_id: int, value: float = 0.0, size: int = DIM) -> Transition:
        return Transition(robot_id='bad', episode_id=episode_id, step_index=4,
                          observation=[value] * size, action=[0.0, 0.0],
                          next_observation=[0.0] * DIM, goal=[0.0] * DIM, episode_end=True)

    current = goals.messages[-1].episode_id
    for case, msg, error in (
            ('NaN end', end(current, float('nan')), 'missing or non-finite'),
            ('end of an old episode', end(current - 1), f'ignored the end of episode '
                                                        f'{current - 1}')):
        mark = len(node.output)
        ends.publish(msg)
        assert wait_for(lambda: re.search(error, node.output[mark:])), (case, node.output)
    # The NaN end still ended its episode; a good end ends the next one.
    assert wait_for(lambda: goals.messages[-1].episode_id == current + 1), node.output
    ends.publish(end(current + 1))
    assert wait_for(lambda: goals.messages[-1].episode_id == current + 2), node.output
    assert_alive(node)


@pytest.mark.multiprocess
def test_goal_scheduler_rig_goal_image(rig):
    encoder_node(rig)
    node = scheduler_node(rig)
    goals = rig.ros.collect(Goal, '/bad/rig/goal', LATCHED_QOS)
    images = rig.ros.publisher(Image, '/bad/rig/goal_image', SENSOR_QOS)
    assert rig.ros.wait_for_subscribers(images), node.output
    for case, image, error in malformed_images():
        expect_log(node, f'dropped a malformed goal image.*(?:{error})',
                   lambda: images.publish(image), case)
    assert 'reaching it instead of practising' not in node.output
    send_big_frames(images, node)
    for case, image in (('mono8 37x91', array_to_image(np.full((37, 91), 9, np.uint8),
                                                       'mono8')),
                        ('bgra8', array_to_image(np.full((20, 33, 4), 9, np.uint8), 'bgra8'))):
        before = len(goals.matching(lambda m: m.source == 'image'))

        def reached() -> bool:
            images.publish(image)
            return len(goals.matching(lambda m: m.source == 'image')) > before
        assert wait_for(reached, timeout=LOG_TIMEOUT_S, interval=1.0), (case, node.output)
    assert_alive(node)


@pytest.mark.multiprocess
def test_learner_rig_transition(rig, vae_checkpoint):
    node = learner_node(rig, vae_checkpoint)
    status = rig.ros.collect(String, '/learn/rig/learner_status', LATCHED_QOS)
    publisher = rig.ros.publisher(Transition, '/learn/rig/transition', TRANSITION_QOS)
    assert rig.ros.wait_for_subscribers(publisher), node.output

    def latest() -> dict:
        return json.loads(status.messages[-1].data) if status.messages else {}

    def transition(step: int, **fields: Any) -> Transition:
        values = {'observation': [0.1 * step] * DIM, 'action': [0.5, -0.5],
                  'next_observation': [0.1 * (step + 1)] * DIM, 'goal': [0.0] * DIM}
        values.update(fields)
        return Transition(robot_id='robot_0', episode_id=1, step_index=step,
                          episode_end=step == 4, **values)

    nan, inf = float('nan'), float('inf')
    cases = [
        ('NaN observation', transition(0, observation=[nan] * DIM), 'observation holds NaN'),
        ('inf action', transition(0, action=[inf, 0.0]), 'action holds NaN or infinite'),
        ('NaN goal', transition(0, goal=[0.0, nan, 0.0, 0.0]), 'goal holds NaN'),
        ('observation of 3', transition(0, observation=[0.0] * 3), 'observation has 3 values'),
        ('action of 5', transition(0, action=[0.0] * 5), 'action has 5 values'),
        ('empty next observation', transition(0, next_observation=[]),
         'next_observation has 0 values'),
    ]
    assert wait_for(lambda: latest().get('received') == 0), node.output
    for case, msg, error in cases:
        mark = len(node.output)
        publisher.publish(msg)
        assert wait_for(lambda: re.search(f'rejected transition .*{error}', node.output[mark:])
                        ), (case, node.output[-2000:])
    assert wait_for(lambda: latest().get('invalid') == len(cases)), latest()
    assert latest()['stored'] == 0 and latest()['pending'] == 0
    for step in range(5):  # a whole good episode afterwards: every step stored, no gap
        publisher.publish(transition(step))
    assert wait_for(lambda: latest().get('stored') == 5), (latest(), node.output[-2000:])
    final = latest()
    assert (final['invalid'], final['gap'], final['received']) == (len(cases), 0, 11)
    assert_alive(node)


@pytest.mark.multiprocess
def test_mujoco_sim_ee_velocity_and_goal_state(rig):
    node = sim_node(rig)
    states = rig.ros.collect(PointStamped, '/sim/robot/state', COMMAND_QOS)
    goal_images = rig.ros.collect(Image, '/sim/sim/goal_image', LATCHED_QOS)
    commands = rig.ros.publisher(TwistStamped, '/sim/ee_velocity', COMMAND_QOS)
    goal_states = rig.ros.publisher(Float64MultiArray, '/sim/sim/goal_state', COMMAND_QOS)
    assert rig.ros.wait_for_subscribers(commands) and rig.ros.wait_for_subscribers(goal_states)

    def command(x: float, y: float) -> Callable[[], None]:
        def send() -> None:
            msg = TwistStamped()
            msg.header.stamp = stamp(rig)
            msg.twist.linear.x, msg.twist.linear.y = x, y
            commands.publish(msg)
        return send

    nan, inf = float('nan'), float('inf')
    for case, send, error in (('NaN x', command(nan, 0.0), r'rejected velocity.*nan'),
                              ('inf y', command(0.0, inf), r'rejected velocity.*inf'),
                              ('-inf x', command(-inf, 0.1), r'rejected velocity.*-inf')):
        expect_log(node, error, send, case)
    assert wait_for(lambda: states.messages), node.output
    start = states.messages[-1].point.x
    assert wait_for(lambda: command(0.2, 0.0)() or states.messages[-1].point.x > start + 0.01,
                    interval=0.1), node.output[-2000:]
    for case, data, error in (('NaN state', [nan, 0.6], 'cannot render goal state'),
                              ('state of 3', [0.0, 0.6, 0.1], 'finite numbers'),
                              ('outside the workspace', [5.0, 5.0], 'outside the workspace')):
        expect_log(node, error, lambda: goal_states.publish(Float64MultiArray(data=data)), case)
    goal_states.publish(Float64MultiArray(data=[0.0, 0.6]))
    assert wait_for(lambda: goal_images.messages), node.output[-2000:]
    assert_alive(node)


# Startup: bad parameters and corrupt or mismatched checkpoints.

BAD_PARAMETERS = [
    ('camera_pipeline', {'size': -3}, 'size'),
    ('vae_encoder', {'torch_threads': 0}, 'torch_threads'),
    ('vae_encoder', {'reconstruction_period_s': -1.0}, 'reconstruction_period_s'),
    ('policy', {'control_rate_hz': 0.0}, 'control_rate_hz'),
    ('goal_scheduler', {'episode_length': 0}, 'episode_length'),
    ('learner', {'latent_dim': 0}, 'latent_dim'),
    ('learner', {'skew_fit.alpha': -1.0}, 'skew_fit.alpha'),  # needs the frames' goals
    ('learner', {'skew_fit.alpha': 0.5, 'imagined_goals': 'frames'}, 'alpha'),
    ('goal_scheduler', {'skew_alpha': -0.5}, 'skew_alpha'),
    ('goal_scheduler', {'imagined_goals': 'frames', 'frame_goals_hand_box.low': [0.1, 0.5],
                        'frame_goals_hand_box.high': [0.0, 0.7]}, 'frame_goals_hand_box'),
    ('mujoco_sim', {'task': 'flying'}, 'task'),
]


@pytest.mark.parametrize('executable,parameters,name', BAD_PARAMETERS,
                         ids=[f'{e}-{n}' for e, _, n in BAD_PARAMETERS])
def test_bad_parameter_stops_the_node(start_node, tmp_path, executable, parameters, name):
    if executable == 'learner':
        parameters = {**parameters, 'run_dir': str(tmp_path)}
    node = start_node(executable, parameters=parameters)
    assert node.wait_exit(timeout=60.0) == 2, node.output
    assert re.search(rf'\b{re.escape(name)}\b', node.output), node.output
    assert 'Traceback' not in node.output, node.output


def corrupt_checkpoints(tmp_path: pathlib.Path) -> list[tuple[str, str, dict, str]]:
    garbage = tmp_path / 'garbage.safetensors'
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, np.uint8).tobytes())
    truncated = tmp_path / 'truncated.safetensors'
    save_vae(truncated, untrained_vae(0))
    truncated.write_bytes(truncated.read_bytes()[:2000])
    no_vae = tmp_path / 'no_vae.safetensors'
    save_checkpoint(no_vae, {'actor': {'w': torch.zeros(2)}}, {}, {})
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'learner.safetensors').write_bytes(garbage.read_bytes())
    other = tmp_path / 'other_run'
    other.mkdir()
    save_checkpoint(other / 'learner.safetensors', {'actor': {}}, {},
                    {'task': 'pusher', 'latent_dim': 4, 'action_dim': 2,
                     'td3': {'hidden_sizes': [400, 300]}}, {'updates': 0})
    missing = tmp_path / 'missing.safetensors'
    tracker = tmp_path / 'tracker.json'
    tracker.write_text('{"format": "rig_ros puck tracker 1", "weights": []}')
    pushes = {'explore_aimed_pushes': 0.5, 'explore_push_box.low': [-0.2, 0.5],
              'explore_push_box.high': [0.2, 0.7]}
    return [
        ('vae_encoder', 'garbage', {'vae_checkpoint': str(garbage)}, 'garbage.safetensors'),
        ('vae_encoder', 'truncated', {'vae_checkpoint': str(truncated)}, 'truncated'),
        ('vae_encoder', 'missing', {'vae_checkpoint': str(missing)}, 'missing.safetensors'),
        ('goal_scheduler', 'no vae module', {'vae_checkpoint': str(no_vae)}, "no 'vae' module"),
        ('learner', 'garbage', {'run_dir': str(run)}, 'learner.safetensors'),
        ('learner', 'other task', {'run_dir': str(other)}, 'another run_dir'),
        ('learner', 'garbage vae', {'run_dir': str(tmp_path / 'fresh'),
                                    'vae_checkpoint': str(garbage)}, 'garbage.safetensors'),
        ('policy', 'bad tracker', {**pushes, 'puck_tracker_file': str(tracker)},
         'tracker.json is not a puck tracker calibration'),
        ('policy', 'missing tracker', {**pushes, 'puck_tracker_file': str(tmp_path / 'no.json')},
         'no.json is not a puck tracker calibration'),
    ]


CHECKPOINT_CASES = ['vae_encoder-garbage', 'vae_encoder-truncated', 'vae_encoder-missing',
                    'goal_scheduler-no vae module', 'learner-garbage', 'learner-other task',
                    'learner-garbage vae', 'policy-bad tracker', 'policy-missing tracker']


@pytest.mark.parametrize('case', CHECKPOINT_CASES)
def test_corrupt_checkpoint_stops_the_node_cleanly(start_node, tmp_path, case):
    executable, parameters, text = next(
        (e, p, t) for e, c, p, t in corrupt_checkpoints(tmp_path) if f'{e}-{c}' == case)
    node = start_node(executable, parameters={**parameters, 'tensorboard': False}
                      if executable == 'learner' else parameters)
    code: Optional[int] = node.wait_exit(timeout=60.0)
    assert code == 2, node.output
    assert text in node.output, node.output
    assert 'Traceback' not in node.output, node.output
    lines = [line for line in node.output.splitlines() if line.strip()]
    assert len(lines) <= 6, node.output  # one clear error, no soup
    if node.returncode is None:
        node.stop(signal.SIGKILL)
