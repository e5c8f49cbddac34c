"""The whole practice graph on the fake Sawyer (the `sim=False` path), end to end.

`fake_sawyer` stands where intera would be (its topics at intera's names, stand-in message
types) with `scene_camera` as its head camera (the sim's scene rendered at the fake's joint
states); the graph is `practice_graph(sim=False)` as `rig practice --no-sim` runs it
(GraphRunner, real time: a sawyer_driver, camera_pipeline, vae_encoder, policy and
goal_scheduler in robot_0, the learner), on its own ROS_DOMAIN_ID, with small settings and a
smaller safety box from a parameter file written here, and an untrained VAE checkpoint that
the learner serves (`vae_checkpoint`) to the encoder and the scheduler. The driver's camera
relay feeds the pipeline (no remapping), which crops with config/sawyer_reacher.yaml's crop.
The test activates the driver and then the policy through their SetBool services, as an
operator would.

Asserted within bounded waits: nothing moves before activation; the learner stores the robot's
transitions; policy weights versions advance and the policy acts with them; every episode
starts after a reset through the driver (joint error < RESET_TOLERANCE_RAD when the goal
goes out); the arm moves during practice and the tool (forward kinematics of the fake's joint
states) stays inside the driver's box throughout; a clean stop (exit codes, no tracebacks,
zero velocity and zero joint commands last, the arm still afterwards); the frames move with
the arm (identical images and latents while it stands still; during practice each sampled
`rig/image` is the scene rendered at the fake's joint state of its stamp, and frames with the
tool moved away from the reset pose differ from the reset pose's frame, as their latents do).

A second test runs the same graph from an EMPTY run directory, with no VAE anywhere: after
activation the learner's status goes explore -> pretrain -> practise; the frames of the
exploration episodes (empty goals of VAE version 0) are kept in run_dir/frames, the VAE the
learner pretrains on them goes out as version 1, imagined goals follow and practice
transitions of VAE version 1 are stored; the tool stays inside the driver's box from the
first exploration episode on.
"""

import contextlib
import io
import json
import pathlib
import time
from typing import Any, Callable, Iterator, Optional

from geometry_msgs.msg import TwistStamped
from harness import latest_status, wait_for
import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool
import yaml

from rig_msgs.msg import Goal, LatentState, Transition, Weights
from rig_ros import graph
from rig_ros.core.encoder import VAE_CHECKPOINT_FILE
from rig_ros.core.frames import FRAMES_DIR
from rig_ros.core.preprocessing import CropBox, preprocess, PreprocessConfig
from rig_ros.edge.image_msgs import image_to_array
from rig_ros.interfaces.names import JOINT_COMMAND_TOPIC, JOINT_STATES_TOPIC, STANDIN_SUFFIX
from rig_ros.interfaces.qos import (
    ARM_QOS, COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, TRANSITION_QOS, WEIGHTS_QOS)
from rig_ros.robot.kinematics import JOINT_NAMES, SawyerKinematics
from rig_ros.run.runner import GraphRunner
from rig_ros.sim.joint_camera import JointCamera, JointCameraConfig

# `make test-robot` runs these alone; processes race over DDS.
pytestmark = [pytest.mark.robot, pytest.mark.multiprocess]

ROBOT = 'robot_0'
DEADLINE_S = 90.0  # start (torch imports in 6 processes) + practice, on a loaded 2-core box
SERVICE_TIMEOUT_S = 30.0
EPISODE_LENGTH = 20
EPISODES = 3  # goals (each after a reset) to see
STORED = 40  # transitions the learner must have stored from the robot
TOOL_OFFSET_M = 0.12  # config/sawyer_reacher.yaml
# A box smaller than config/sawyer_reacher.yaml's, so that exploration meets its walls.
BOX_LOW = (0.55, -0.06, 0.05)
BOX_HIGH = (0.65, 0.06, 0.3)
RESET = np.array([-0.297, -1.0206, 0.0393, 1.7965, -0.0288, 0.7954, 3.0729])  # the config's
RESET_TOLERANCE_RAD = 0.02  # the driver answers within reset_tolerance_rad (0.01)
STILL_RAD = 1e-4  # the arm after the stop: intera holds position
FRAME_SAMPLES = 30  # practice frames compared with the scene rendered at their joint states
MOVED_M = 0.03  # a tool this far from the reset pose moves the arm visibly (~6 px of 84)
NEAR_M = 0.005  # and one this close hardly (~1 px)
CAMERA_LAG_STATES = 15  # joint states (100 Hz) the camera's may lag behind a frame's stamp


def practice_params(tmp_path: pathlib.Path, checkpoint: Optional[pathlib.Path],
                    learner: Optional[dict] = None) -> pathlib.Path:
    """Write a parameter file for a small real-time practice run.

    checkpoint: the VAE the learner serves; None: none, the run explores and pretrains its
    own. learner: more learner parameters (nested as in the YAML).
    """
    learner_params: dict = {
        'replay_capacity': 5000, 'broadcast_every': 10, 'checkpoint_every': 0,
        'status_period_s': 0.5,
        'td3': {'learning_starts': 10, 'updates_per_step': 1, 'batch_size': 16,
                'hidden_sizes': [32, 32]}}
    if checkpoint is not None:
        learner_params['vae_checkpoint'] = str(checkpoint)
    params = {
        '/**/sawyer_driver': {'ros__parameters': {
            'bridge': {'message_types': 'standin'},
            'safety': {'box_low': list(BOX_LOW), 'box_high': list(BOX_HIGH)}}},
        '/**/goal_scheduler': {'ros__parameters': {
            'episode_length': EPISODE_LENGTH, 'retry_period_s': 0.5}},
        '/**/learner': {'ros__parameters': {**learner_params, **(learner or {})}},
    }
    path = tmp_path / 'fake_sawyer_practice.yaml'
    path.write_text(yaml.safe_dump(params))
    return path


def stamp_s(msg) -> float:
    """Return a message's header stamp in seconds."""
    return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec


def joint_angles(msg: JointState) -> np.ndarray:
    """Return the arm's joint angles of an intera joint state (head_pan and all)."""
    names = list(msg.name)
    return np.array([msg.position[names.index(name)] for name in JOINT_NAMES])


def activate(ros, name: str, report: Callable[[], str]) -> None:
    """Call robot_0's SetBool service `name` (driver/activate, policy/activate) with true."""
    client = ros.node.create_client(SetBool, f'/{ROBOT}/{name}')
    assert client.wait_for_service(timeout_sec=SERVICE_TIMEOUT_S), report()
    future = client.call_async(SetBool.Request(data=True))
    assert wait_for(future.done, timeout=SERVICE_TIMEOUT_S), report()
    assert future.result().success, report()


def assert_tool_in_box(tool: np.ndarray, report: Callable[[], str]) -> float:
    """Check tool positions [N, 3] lie in the driver's box; return the closest to a wall."""
    assert len(tool), report()
    assert np.all(tool >= BOX_LOW) and np.all(tool <= BOX_HIGH), (
        tool.min(axis=0), tool.max(axis=0), report())
    return float(np.min(np.r_[tool - BOX_LOW, BOX_HIGH - tool]))


class FakeSawyerPractice:
    """The fake Sawyer, its camera and the sim=False practice graph, with the checks' helpers."""

    def __init__(self, runner: GraphRunner, output: io.StringIO, fake: Any, camera: Any,
                 status: Any) -> None:
        self.runner, self.output, self.fake, self.camera = runner, output, fake, camera
        self.status = status  # the learner's status messages

    def latest(self) -> dict:
        """Return the newest learner status, {} before the first."""
        return latest_status(self.status)

    def alive(self) -> bool:
        """Whether the graph and both stand-ins still run."""
        return (self.runner.wait(timeout=0.0) is None and self.fake.returncode is None
                and self.camera.returncode is None)

    def wait(self, predicate: Callable[[], Any], timeout: float) -> bool:
        """Wait for `predicate`; false at once if anything exited."""
        return wait_for(lambda: predicate() or not self.alive(),
                        timeout=timeout, interval=0.1) and self.alive()

    def report(self) -> str:
        """Return the status and the tails of every output (for assertion messages)."""
        return (f'status {self.latest()}\n[fake_sawyer]\n{self.fake.output[-2000:]}\n'
                f'[scene_camera]\n{self.camera.output[-2000:]}\n'
                f'{self.output.getvalue()[-8000:]}')


@contextlib.contextmanager
def fake_sawyer_practice(
        ros, start_node, tmp_path: pathlib.Path, checkpoint: Optional[pathlib.Path],
        learner: Optional[dict] = None) -> Iterator[FakeSawyerPractice]:
    """Start the fake Sawyer, its camera and the sim=False practice graph; stop them after."""
    status = ros.collect(String, '/rig/learner_status', LATCHED_QOS)
    fake = start_node('fake_sawyer', parameters={'message_types': 'standin'})
    camera = start_node('scene_camera')  # the reacher's scene, 240x320 at 10 Hz
    params = practice_params(tmp_path, checkpoint, learner)
    specs = graph.practice_graph(sim=False, params_file=str(params),
                                 run_dir=str(tmp_path / 'run'), lockstep=False)
    assert sorted(spec.fully_qualified_name for spec in specs) == [
        '/learner', f'/{ROBOT}/camera_pipeline', f'/{ROBOT}/goal_scheduler', f'/{ROBOT}/policy',
        f'/{ROBOT}/sawyer_driver', f'/{ROBOT}/vae_encoder']
    output = io.StringIO()
    runner = GraphRunner(specs, output=output, sigint_timeout=15.0)
    runner.start()
    try:
        yield FakeSawyerPractice(runner, output, fake, camera, status)
    finally:
        runner.stop()


@pytest.fixture
def practice(ros, start_node, tmp_path, vae_checkpoint) -> Iterator[FakeSawyerPractice]:
    """Start the fake Sawyer practising with the untrained VAE the learner serves."""
    with fake_sawyer_practice(ros, start_node, tmp_path, vae_checkpoint) as started:
        yield started


@pytest.mark.slow
def test_practice_graph_on_the_fake_sawyer(ros, practice):
    runner, output, fake, camera, status = (
        practice.runner, practice.output, practice.fake, practice.camera, practice.status)
    latest, alive, wait, report = practice.latest, practice.alive, practice.wait, practice.report
    began = time.monotonic()
    kinematics = SawyerKinematics(tool_offset_m=TOOL_OFFSET_M)
    joints = ros.collect(JointState, JOINT_STATES_TOPIC, ARM_QOS)
    joint_commands = ros.collect(JointState, JOINT_COMMAND_TOPIC + STANDIN_SUFFIX, ARM_QOS)
    velocities = ros.collect(TwistStamped, f'/{ROBOT}/ee_velocity', COMMAND_QOS)
    latents = ros.collect(LatentState, f'/{ROBOT}/rig/latent', SENSOR_QOS)
    images = ros.collect(Image, f'/{ROBOT}/rig/image', SENSOR_QOS)
    goals = ros.collect(Goal, f'/{ROBOT}/rig/goal', LATCHED_QOS)
    weights = ros.collect(Weights, '/rig/weights', WEIGHTS_QOS)
    transitions = ros.collect(Transition, '/rig/transition', TRANSITION_QOS)

    # Before activation: the whole graph runs (latents flow, the learner serves the VAE, the
    # scheduler's resets are refused), and nothing moves.
    assert wait(lambda: joints.messages and latents.messages and status.messages
                and 'reset refused' in output.getvalue(), DEADLINE_S), report()
    before = np.array([joint_angles(m) for m in joints.messages])
    assert np.max(np.abs(before - before[0])) < 1e-9, report()
    assert all(not any(m.velocity) for m in joint_commands.messages), report()
    assert not goals.messages, report()  # no episode without a reset
    # The camera renders the arm where it stands: every image, and every latent, the same.
    resting = [image_to_array(m) for m in images.messages]
    assert resting and all(np.array_equal(i, resting[0]) for i in resting), report()
    resting_latents = np.array([m.mean for m in latents.messages])
    assert np.allclose(resting_latents, resting_latents[0], atol=1e-6), report()
    ready_s = time.monotonic() - began

    # The operator's order: the driver, then the policy (a real robot's policy starts inactive).
    activate(ros, 'driver/activate', report)
    activated = time.monotonic()
    activate(ros, 'policy/activate', report)

    def acted_with_weights() -> bool:
        return any(m.policy_version >= 1 for m in transitions.messages)

    def done() -> bool:
        robot = latest().get('robots', {}).get(ROBOT, {})
        return (robot.get('stored', 0) >= STORED and latest().get('weights_version', 0) >= 2
                and acted_with_weights() and len(goals.messages) >= EPISODES)

    assert wait(done, DEADLINE_S - (activated - began)), report()
    practice_s = time.monotonic() - activated
    final = latest()
    for key in ('invalid', 'duplicate', 'out_of_order'):
        assert final[key] == 0, report()
    assert final['robots'][ROBOT]['stored'] >= STORED, report()
    # Weights versions advance, in order, and the policy loads them and acts with them.
    versions = [m.version for m in weights.messages if m.model_name == 'policy']
    assert versions and versions == sorted(versions) and versions[-1] >= 2, report()
    assert any(line.startswith(f'[{ROBOT}/policy]') and 'policy weights version' in line
               and line.endswith('loaded') for line in output.getvalue().splitlines()), report()

    # Every episode starts at the reset pose: the joint state at the goal's stamp (taken after
    # the driver answered robot/reset).
    last_goal_s = stamp_s(goals.messages[-1])
    assert wait_for(lambda: stamp_s(joints.messages[-1]) > last_goal_s + 0.2,
                    timeout=10.0), report()
    states = joints.messages
    times = np.array([stamp_s(m) for m in states])
    q = np.array([joint_angles(m) for m in states])
    tool = np.array([kinematics.forward(angles).position for angles in q])
    episode_goals = [m for m in goals.messages if m.source == 'prior']
    assert len(episode_goals) >= EPISODES, report()
    errors = []
    for goal in episode_goals:
        index = int(np.searchsorted(times, stamp_s(goal)))
        assert index < len(states), report()
        errors.append(float(np.max(np.abs(q[index] - RESET))))
    assert max(errors) < RESET_TOLERANCE_RAD, (errors, report())

    # Practice moves the arm away from the reset pose; the tool never leaves the box.
    practising = times >= stamp_s(episode_goals[0])
    reset_tool = kinematics.forward(RESET).position
    moved = float(np.max(np.linalg.norm(tool[practising] - reset_tool, axis=1)))
    assert moved > 0.02, report()
    closest = assert_tool_in_box(tool[practising], report)
    assert closest < 0.02, report()  # exploration reached the walls: the box was tested

    # A clean stop: every node exits by itself, zero commands go out last, the arm holds.
    assert alive(), report()
    stopping = time.monotonic()
    code = runner.stop()
    stop_s = time.monotonic() - stopping
    assert code == 0, (runner.exit_codes, report())
    assert 'Traceback' not in output.getvalue(), report()
    assert wait_for(lambda: len(joints.messages) > len(states) + 50, timeout=10.0)
    last_velocity = velocities.messages[-1].twist.linear
    assert (last_velocity.x, last_velocity.y, last_velocity.z) == (0.0, 0.0, 0.0), report()
    assert not any(joint_commands.messages[-1].velocity), (
        [(stamp_s(m), any(m.velocity)) for m in joint_commands.messages[-6:]], stopping, report())
    time.sleep(0.5)  # past intera's command timeout (0.2 s)
    after = np.array([joint_angles(m) for m in joints.messages[-50:]])
    assert np.max(np.abs(after - after[0])) < STILL_RAD, report()
    assert fake.returncode is None and 'Traceback' not in fake.output, report()
    assert camera.returncode is None and 'Traceback' not in camera.output, report()

    # The frames move with the arm. Each sampled practice image is camera_pipeline's crop of
    # the scene rendered at a joint state of the last CAMERA_LAG_STATES before its stamp (the
    # camera renders the newest state it has; a busy process may not have the newest sent);
    # a frame with the tool away from the reset pose throughout that window differs from the
    # reset pose's frame, and so does its latent from the latents of frames at the reset pose.
    pipeline = PreprocessConfig(crop=CropBox.from_fractions(*JointCameraConfig().view))
    offsets = np.linalg.norm(tool - reset_tool, axis=1)

    def window(msg) -> slice:
        """Return the joint states the camera may have had for a frame (stamped before it)."""
        last = int(np.searchsorted(times, stamp_s(msg), side='right')) - 1
        return slice(max(last - CAMERA_LAG_STATES, 0), last + 1)

    practised = [m for m in images.messages
                 if stamp_s(episode_goals[0]) <= stamp_s(m) <= times[-1]]
    assert len(practised) >= FRAME_SAMPLES, (len(practised), report())
    render_errors, changes, distances = [], [], []
    with JointCamera() as twin:
        reset_image = preprocess(twin.render(RESET), pipeline).astype(int)
        for msg in practised[::len(practised) // FRAME_SAMPLES]:
            image = image_to_array(msg).astype(int)
            candidates = q[window(msg)][::-1]  # the newest first: usually the one
            errors_here = []
            for angles in candidates[::3]:
                expected = preprocess(twin.render(angles), pipeline).astype(int)
                errors_here.append(float(np.abs(image - expected).mean()))
                if errors_here[-1] < 0.3:
                    break
            render_errors.append(min(errors_here))
            changes.append(float(np.abs(image - reset_image).mean()))
            distances.append(float(offsets[window(msg)].min()))
    render_errors, changes = np.array(render_errors), np.array(changes)
    moved_away = np.array(distances) > MOVED_M
    assert moved_away.any(), (distances, report())
    # Grey levels, mean over the image: measured 0.02-0.7 rendered-vs-received (newest state
    # only), 2.6-3.4 with the tool 3-6 cm from the reset pose.
    assert render_errors.max() < 1.0, (render_errors, distances)
    assert changes[moved_away].min() > 2 * max(render_errors.max(), 0.5), (changes, distances)
    practice_latents = [m for m in latents.messages
                        if stamp_s(episode_goals[0]) <= stamp_s(m) <= times[-1]]
    means = np.array([m.mean for m in practice_latents])
    at_reset = means[[offsets[window(m)].max() < NEAR_M for m in practice_latents]]
    away = means[[offsets[window(m)].min() > MOVED_M for m in practice_latents]]
    assert len(at_reset) and len(away), report()
    centre = at_reset.mean(axis=0)
    spread_at_reset = float(np.linalg.norm(at_reset - centre, axis=1).max())
    spread_away = float(np.linalg.norm(away - centre, axis=1).max())
    assert spread_away > 2 * spread_at_reset, (spread_at_reset, spread_away)
    print(f'fake Sawyer practice: ready {ready_s:.1f} s, practice {practice_s:.1f} s: '
          f'{final["robots"][ROBOT]["stored"]} transitions stored, weights '
          f'v{final["weights_version"]}, {len(episode_goals)} episodes, reset joint error '
          f'max {max(errors):.4f} rad, tool moved up to {moved:.3f} m, closest to a wall '
          f'{closest:.4f} m, {len(joint_commands.messages)} joint commands; stop {stop_s:.1f} s; '
          f'{len(practised)} practice frames, sampled: rendered-vs-received error max '
          f'{render_errors.max():.2f}, moved frames differ by >= '
          f'{changes[moved_away].min():.1f} '
          f'(grey levels); latents {spread_at_reset:.4f} apart at resets, up to '
          f'{spread_away:.4f} away')


EXPLORE_FRAMES = 100
VAE_STEPS = 40
EXPLORING = {'explore_frames': EXPLORE_FRAMES, 'vae_steps': VAE_STEPS, 'vae': {'batch_size': 16},
             'vae_checkpoint_every': 20, 'frame_chunk_frames': 20, 'frame_flush_period_s': 0.5,
             'reconstruction_period_s': 0.0}
LIFECYCLE_DEADLINE_S = 180.0  # start, 100 frames at 10 Hz with resets, pretraining, practice
STAGES = ['explore', 'pretrain', 'practise']


@pytest.mark.slow
def test_a_new_run_explores_pretrains_and_practises_on_the_fake_sawyer(
        ros, start_node, tmp_path):
    began = time.monotonic()
    run_dir = tmp_path / 'run'
    kinematics = SawyerKinematics(tool_offset_m=TOOL_OFFSET_M)
    joints = ros.collect(JointState, JOINT_STATES_TOPIC, ARM_QOS)
    goals = ros.collect(Goal, f'/{ROBOT}/rig/goal', LATCHED_QOS)
    weights = ros.collect(Weights, '/rig/weights', WEIGHTS_QOS)
    transitions = ros.collect(Transition, '/rig/transition', TRANSITION_QOS)
    with fake_sawyer_practice(ros, start_node, tmp_path, None, EXPLORING) as practice:
        runner, output, fake, camera, status = (
            practice.runner, practice.output, practice.fake, practice.camera, practice.status)
        latest, alive, wait, report = (practice.latest, practice.alive, practice.wait,
                                       practice.report)

        # A new run explores; nothing moves before activation (resets are refused).
        assert wait(lambda: latest().get('stage') == 'explore'
                    and 'reset refused' in output.getvalue(), DEADLINE_S), report()
        assert 'a new run' in output.getvalue() and not goals.messages, report()
        activate(ros, 'driver/activate', report)
        activated = time.monotonic()
        activate(ros, 'policy/activate', report)

        def practice_stored() -> int:
            return latest().get('robots', {}).get(ROBOT, {}).get('stored', 0)

        assert wait(lambda: latest().get('stage') == 'practise'
                    and practice_stored() >= EPISODE_LENGTH,
                    LIFECYCLE_DEADLINE_S - (activated - began)), report()
        done_s = time.monotonic() - activated
        final = latest()
        stages = []
        for message in status.messages:
            stage = json.loads(message.data).get('stage')
            if stage not in stages:
                stages.append(stage)
        assert stages == STAGES, (stages, report())
        # The frames: kept on disk, at least the budget, all of the robot's exploration.
        on_disk = 0
        for chunk in (run_dir / FRAMES_DIR).glob('*.npz'):
            with np.load(chunk) as data:
                on_disk += len(data['images'])
                assert data['images'].shape[1:] == (84, 84, 3)
        assert final['frames'] == on_disk >= EXPLORE_FRAMES, (on_disk, final)
        assert final['vae_step'] == VAE_STEPS and final['replay_seeded'], final
        assert (run_dir / VAE_CHECKPOINT_FILE).is_file()
        # Exploration episodes first (empty goal, VAE version 0), then imagined goals.
        sources = [m.source for m in goals.messages]
        assert 'explore' in sources and 'prior' in sources, sources
        first_prior = sources.index('prior')
        assert set(sources[:first_prior]) == {'explore'}, sources
        assert set(sources[first_prior:]) == {'prior'}, sources
        assert all(not m.mean and m.model_version == 0 and m.episode_length == EPISODE_LENGTH
                   for m in goals.messages[:first_prior])
        assert all(m.model_version == 1 for m in goals.messages[first_prior:])
        # The VAE the run trained goes out once, as version 1; practice acts with it.
        assert [m.version for m in weights.messages if m.model_name == 'vae'] == [1], report()
        sent = transitions.messages
        exploring = [m for m in sent if m.vae_version == 0]
        practising = [m for m in sent if m.vae_version == 1]
        assert exploring and all(not m.observation and m.image.width == 84 for m in exploring)
        assert len(practising) >= EPISODE_LENGTH and all(
            m.next_vae_version == 1 and len(m.observation) == 4 for m in practising), report()
        assert {m.episode_id for m in practising}.isdisjoint(m.episode_id for m in exploring)
        for key in ('invalid', 'duplicate', 'out_of_order'):
            assert final[key] == 0, report()

        # The tool, by forward kinematics of the fake's joint states, moved and stayed in the
        # driver's box from the first exploration episode on.
        states = joints.messages
        times = np.array([stamp_s(m) for m in states])
        tool = np.array([kinematics.forward(joint_angles(m)).position for m in states])
        moving = times >= stamp_s(goals.messages[0])
        reset_tool = kinematics.forward(RESET).position
        moved = float(np.max(np.linalg.norm(tool[moving] - reset_tool, axis=1)))
        assert moved > 0.02, report()
        closest = assert_tool_in_box(tool[moving], report)

        assert alive(), report()
        code = runner.stop()
        assert code == 0, (runner.exit_codes, report())
        assert 'Traceback' not in output.getvalue(), report()
        assert 'Traceback' not in fake.output and 'Traceback' not in camera.output, report()
    print(f'\nfake Sawyer lifecycle: ready {activated - began:.1f} s, explore -> pretrain -> '
          f'practise {done_s:.1f} s: {on_disk} frames, {len(exploring)} exploration and '
          f'{len(practising)} practice transitions sent ({practice_stored()} stored), '
          f'{first_prior} exploration episodes, tool moved up to {moved:.3f} m, closest to a '
          f'wall {closest:.4f} m; {time.monotonic() - began:.1f} s')
