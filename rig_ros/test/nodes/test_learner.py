"""learner as a process: a run explores and pretrains; transitions stored; weights go out."""

import json
import signal
import time

from geometry_msgs.msg import TwistStamped
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String

from rig_msgs.msg import Goal, LatentState, Transition, Weights
from rig_ros.core.learner import REPLAY_FILE
from rig_ros.core.policy_runtime import decode_policy_weights
from rig_ros.edge.image_msgs import array_to_image
from rig_ros.edge.params import ParameterError
from rig_ros.graph import task_param_files
from rig_ros.interfaces.qos import (
    COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, TRANSITION_QOS, WEIGHTS_QOS)
from rig_ros.nodes.goal_scheduler import GoalSchedulerNode
from rig_ros.nodes.learner import LearnerNode
from rig_ros.nodes.policy import PolicyNode
from rig_ros.tasks import TASK_NAMES, TASKS

DIM = 4
SMALL = {'td3.hidden_sizes': [32, 32], 'td3.batch_size': 16, 'status_period_s': 0.3}
CLEAN = ('duplicate', 'out_of_order', 'gap', 'discontinuity', 'invalid', 'restart')


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def latest_status(collector) -> dict:
    messages = collector.messages
    return json.loads(messages[-1].data) if messages else {}


def status_has(collector, **expected) -> bool:
    status = latest_status(collector)
    return all(status.get(key) == value for key, value in expected.items())


def transitions(robot: str, episode_id: int, length: int, rng) -> list[Transition]:
    latents = rng.standard_normal((length + 1, DIM)).tolist()
    goal = rng.standard_normal(DIM).tolist()
    return [Transition(robot_id=robot, episode_id=episode_id, step_index=t,
                       observation=latents[t], action=rng.uniform(-1, 1, 2).tolist(),
                       next_observation=latents[t + 1], goal=goal,
                       episode_end=t == length - 1, hand=[t / 100, 0.6, 0.2],
                       next_hand=[(t + 1) / 100, 0.6, 0.2]) for t in range(length)]


def exploration(robot: str, episode_id: int, length: int, rng) -> list[Transition]:
    """Return an exploration episode: empty latents, 84x84 rgb8 frames around each step."""
    frames = rng.integers(0, 256, (length + 1, 84, 84, 3), dtype=np.uint8)
    return [Transition(robot_id=robot, episode_id=episode_id, step_index=t,
                       action=rng.uniform(-1, 1, 2).tolist(), image=array_to_image(frames[t]),
                       next_image=array_to_image(frames[t + 1]), episode_end=t == length - 1)
            for t in range(length)]


SKEW_FIT = {'skew_fit.alpha': -1.0, 'skew_fit.density': 'latent_kde',
            'skew_fit.reweight_every': 5, 'imagined_goals': 'frames'}


@pytest.mark.multiprocess
@pytest.mark.parametrize('skew', [{}, SKEW_FIT], ids=['rig', 'skew_fit'])
def test_a_new_run_explores_then_pretrains_and_broadcasts_its_vae(
        ros, start_node, wait_for, tmp_path, skew):
    node = start_node('learner', parameters={
        **SMALL, 'run_dir': str(tmp_path / 'run'), 'explore_frames': 20, 'vae_steps': 30,
        'vae.batch_size': 8, 'vae_checkpoint_every': 10, 'frame_chunk_frames': 4,
        'reconstruction_period_s': 0.01, **skew})
    status = ros.collect(String, '/rig/learner_status', LATCHED_QOS)
    weights = ros.collect(Weights, '/rig/weights', LATCHED_QOS)
    reconstructions = ros.collect(Image, '/rig/reconstruction', SENSOR_QOS)
    publisher = ros.publisher(Transition, '/rig/transition', TRANSITION_QOS)
    assert ros.wait_for_subscribers(publisher), node.output
    assert wait_for(lambda: status_has(status, stage='explore', frames=0)), node.output
    assert str(tmp_path / 'run') in node.output and 'a new run' in node.output

    rng = np.random.default_rng(0)
    publisher.publish(transitions('robot_0', 0, 1, rng)[0])  # latents while exploring
    for msg in exploration('robot_0', 0, 6, rng) + exploration('robot_1', 0, 6, rng):
        publisher.publish(msg)
    # 2 episodes of 6 steps: 14 frames, short of 20.
    assert wait_for(lambda: status_has(status, stage='explore', frames=14, not_exploring=1)), (
        latest_status(status), node.output)
    for msg in exploration('robot_0', 1, 6, rng):
        publisher.publish(msg)
    assert wait_for(lambda: any(m.model_name == 'vae' for m in weights.messages),
                    timeout=60.0), (latest_status(status), node.output[-3000:])
    vae = [m for m in weights.messages if m.model_name == 'vae']
    assert [m.version for m in vae] == [1] and json.loads(vae[0].config_json)['image_size'] == 48
    assert wait_for(lambda: status_has(status, stage='practise', vae_version=1, stored=18,
                                       replay_seeded=True)), latest_status(status)
    assert (tmp_path / 'run' / 'vae.safetensors').is_file()
    assert wait_for(lambda: reconstructions.messages), node.output
    assert (reconstructions.messages[0].width, reconstructions.messages[0].encoding) == (
        96, 'rgb8')
    assert 'stage pretrain' in node.output and 'stage practise' in node.output
    assert ('Skew-Fit alpha -1' in node.output) == bool(skew), node.output
    assert node.stop(signal.SIGTERM, timeout=10.0) == 0, node.output


@pytest.mark.multiprocess
def test_every_transition_stored_in_order_and_resumed(ros, start_node, wait_for, tmp_path,
                                                      vae_checkpoint):
    parameters = {**SMALL, 'run_dir': str(tmp_path), 'td3.learning_starts': 100,
                  'td3.updates_per_step': 1, 'broadcast_every': 50,
                  'vae_checkpoint': str(vae_checkpoint)}
    node = start_node('learner', parameters=parameters)
    status = ros.collect(String, '/rig/learner_status', LATCHED_QOS)
    weights = ros.collect(Weights, '/rig/weights', LATCHED_QOS)
    publisher = ros.publisher(Transition, '/rig/transition', TRANSITION_QOS)
    assert ros.wait_for_subscribers(publisher), node.output
    assert wait_for(lambda: status_has(status, received=0)), node.output

    # 300 transitions, two robots' 10-step episodes interleaved step by step, sent at once.
    rng = np.random.default_rng(0)
    stream = []
    for episode_id in range(15):
        a, b = (transitions(robot, episode_id, 10, rng) for robot in ('robot_0', 'robot_1'))
        stream += [msg for pair in zip(a, b) for msg in pair]
    began = time.monotonic()
    for msg in stream:
        publisher.publish(msg)
    assert wait_for(lambda: status_has(status, received=300, stored=300), timeout=30.0), (
        latest_status(status), node.output)
    stored_s = time.monotonic() - began
    final = latest_status(status)
    assert {key: final[key] for key in CLEAN} == dict.fromkeys(CLEAN, 0)
    assert final['robots'] == {robot: {'episode_id': 14, 'next_step': 10, 'received': 150,
                                       'stored': 150} for robot in ('robot_0', 'robot_1')}
    # Learning started at the 100th: (300 - 100 + 1) updates; four broadcasts of 50.
    assert wait_for(lambda: status_has(status, updates=201, weights_version=4), timeout=60.0), (
        json.dumps(latest_status(status)), node.output[-3000:])
    assert wait_for(lambda: weights.messages and weights.messages[-1].version == 4)
    state, spec = decode_policy_weights(bytes(weights.messages[-1].safetensors))
    assert (spec.obs_dim, spec.action_dim, spec.hidden_sizes) == (DIM, 2, (32, 32))
    print(f'300 transitions stored in {stored_s:.2f} s')

    # A duplicate is counted, not stored; SIGTERM writes the checkpoint.
    publisher.publish(stream[-1])
    assert wait_for(lambda: status_has(status, received=301, duplicate=1)), latest_status(status)
    assert node.stop(signal.SIGTERM, timeout=10.0) == 0, node.output
    assert (tmp_path / 'learner.safetensors').is_file() and 'Traceback' not in node.output
    # Each frame's hand is kept with the replay (the hand-box goals read them).
    with np.load(tmp_path / REPLAY_FILE) as replay:
        hands = replay['hands'][:int(replay['frames'])]
    assert len(hands) == 330 and sorted(set(np.round(hands[:, 0] * 100).astype(int))) == list(
        range(11))

    # Restarted on the same run directory: counters resume and the policy weights are
    # re-broadcast; a late joiner gets the last weights of both models.
    again = start_node('learner', name='learner', parameters=parameters)
    assert wait_for(lambda: status_has(status, received=301, stored=300, updates=201,
                                       weights_version=5), timeout=30.0), (
        latest_status(status), again.output)
    assert 'resumed' in again.output
    late = ros.collect(Weights, '/rig/weights', WEIGHTS_QOS)
    assert wait_for(lambda: {(m.model_name, m.version) for m in late.messages} == {
        ('vae', 1), ('policy', 5)}), [(m.model_name, m.version) for m in late.messages]


@pytest.mark.multiprocess
def test_weights_reach_the_policy_and_change_its_actions(ros, start_node, wait_for, tmp_path,
                                                         vae_checkpoint):
    # Full-size networks (400, 300): the weights (about 0.5 MB) cross DDS as in practice.
    learner = start_node('learner', parameters={
        'td3.batch_size': 16, 'status_period_s': 0.3, 'run_dir': str(tmp_path),
        'vae_checkpoint': str(vae_checkpoint),
        'td3.learning_starts': 20,
        'td3.updates_per_step': 2, 'broadcast_every': 10})
    fleet = (('rig/weights', '/rig/weights'), ('rig/transition', '/rig/transition'))
    policy = start_node('policy', namespace='/robot_0', remappings=fleet, parameters={
        'act_on_latent': True, 'start_active': True})
    velocities = ros.collect(TwistStamped, '/robot_0/ee_velocity', COMMAND_QOS)
    sent = ros.collect(Transition, '/rig/transition', TRANSITION_QOS)
    weights = ros.collect(Weights, '/rig/weights', LATCHED_QOS)
    status = ros.collect(String, '/rig/learner_status', LATCHED_QOS)
    latents = ros.publisher(LatentState, '/robot_0/rig/latent', SENSOR_QOS)
    goals = ros.publisher(Goal, '/robot_0/rig/goal', LATCHED_QOS)
    assert ros.wait_for_subscribers(latents), policy.output
    assert ros.wait_for_subscribers(goals), policy.output
    assert wait_for(lambda: ros.node.count_subscribers('/rig/transition') >= 2), learner.output
    fixed = [0.3, -0.2, 0.1, 0.4]
    rng = np.random.default_rng(1)

    def stamp():
        return ros.node.get_clock().now().to_msg()

    def episode(episode_id: int, explore: bool, values: list) -> None:
        """Run one lockstep episode: a latent, then wait for the command it causes."""
        goal = Goal(mean=[0.5, 0.5, -0.5, 0.0], episode_id=episode_id,
                    episode_length=len(values) - 1, explore=explore)
        goal.header.stamp = stamp()
        goals.publish(goal)
        assert wait_for(lambda: f'episode {episode_id}:' in policy.output), policy.output
        for value in values:
            for _ in range(10):  # best-effort latents: resend if one is lost
                msg = LatentState(mean=list(value))
                msg.header.stamp = stamp()
                latents.publish(msg)
                sent_at = seconds(msg.header.stamp)
                if wait_for(lambda: any(seconds(m.header.stamp) >= sent_at
                                        for m in velocities.messages[-3:]), timeout=1.0):
                    break
            else:
                raise AssertionError(policy.output)

    def actions_on_fixed() -> dict:
        return {m.policy_version: tuple(m.action) for m in sent.messages
                if list(m.observation) == list(np.float32(fixed))}

    # Practice with random actions: 30 steps reach the learner, which trains and broadcasts.
    episode(1, True, list(rng.standard_normal((31, DIM))))
    assert wait_for(lambda: status_has(status, stored=30, weights_version=2), timeout=30.0), (
        latest_status(status), learner.output)
    assert wait_for(lambda: 'policy weights version 2 loaded' in policy.output), policy.output

    # Greedy with version 2: the fixed latent gives the same action twice.
    episode(2, False, [fixed, rng.standard_normal(DIM), fixed, rng.standard_normal(DIM)])
    assert wait_for(lambda: len(sent.messages) >= 33)
    greedy = [m for m in sent.messages if m.episode_id == 2]
    assert [m.policy_version for m in greedy] == [2, 2, 2] and greedy[-1].episode_end
    assert greedy[0].action == greedy[2].action
    # 3 more stored: 28 updates in all; one more step makes 30 and broadcasts version 3.
    assert wait_for(lambda: status_has(status, stored=33, updates=28), timeout=30.0), (
        latest_status(status))
    episode(3, False, [[0.1] * DIM, [0.2] * DIM])
    assert wait_for(lambda: 'policy weights version 3 loaded' in policy.output), (
        latest_status(status), policy.output)
    episode(4, False, [fixed, rng.standard_normal(DIM)])
    assert wait_for(lambda: 3 in actions_on_fixed()), policy.output
    actions = actions_on_fixed()
    assert actions[2] != actions[3], actions
    assert [m.version for m in weights.messages][-1] == 3
    assert learner.stop(signal.SIGINT) == 0 and policy.stop(signal.SIGINT) == 0


@pytest.mark.parametrize('task', TASK_NAMES)
def test_task_configs_are_accepted(ros_domain_id, tmp_path, task):
    """In process: the task's parameter files build the nodes' configs."""
    context = Context()
    files = [arg for path in task_param_files(task) for arg in ('--params-file', path)]
    rclpy.init(context=context, args=['--ros-args', *files])
    try:
        policy = PolicyNode(context=context)
        assert policy.config.max_speed_m_s == 0.2 and not policy.runtime.active
        learner = LearnerNode(context=context, parameter_overrides=[
            Parameter('run_dir', value=str(tmp_path))])
        assert learner.config.td3.learning_starts == 4000
        assert learner.config.relabel.fraction_prior_goal == 0.5
        # Pushing (config/pushing.yaml): 16 latents, goals from seen frames' latents.
        pushing = TASKS[task].puck_count > 0
        assert learner.config.latent_dim == learner.config.vae.latent_dim == (
            16 if pushing else 4)
        imagined = 'frames' if pushing else 'prior'
        assert learner.config.imagined_goals == imagined
        scheduler = GoalSchedulerNode(context=context)
        assert scheduler.scheduler.config.imagined_goals == imagined
        learner.on_shutdown()
        assert (tmp_path / 'learner.safetensors').is_file()
        for node in (policy, learner, scheduler):
            node.destroy_node()
        # Reach: train false serves the run's actor at once.
        server = LearnerNode(context=context, parameter_overrides=[
            Parameter('train', value=False), Parameter('checkpoint', value=str(tmp_path))])
        assert server.learner.weights_version == 1
        server.on_shutdown()
        server.destroy_node()
    finally:
        context.try_shutdown()


def test_a_run_with_nowhere_to_explore_is_a_parameter_error(ros_domain_id):
    """In process: no vae_checkpoint and no run_dir: the node refuses to start."""
    context = Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ParameterError, match='run_dir'):
            LearnerNode(context=context, parameter_overrides=[Parameter('run_dir', value='')])
    finally:
        context.try_shutdown()
