"""learner: the fleet's one learner: transitions in, TD3 training, policy weights out.

Subscribes `rig/transition` (rig_msgs/Transition from every robot; reliable, keep-last 1000, so
none is lost while the callback keeps up, which it does: it only checks and stores). Publishes
`rig/weights` (rig_msgs/Weights, latched: model 'policy', increasing version, safetensors of
the actor) and `rig/learner_status` (std_msgs/String, latched JSON counters: received,
stored, pending, rejections by kind, updates, weights_version, ...), also logged every
status_period_s.

A worker thread trains (`rig_ros.core.learner.Learner`: updates owed per stored transition,
sampling under a lock shared with ingestion, TD3 steps outside it), broadcasts weights every
broadcast_every updates and checkpoints to run_dir every checkpoint_every updates and every
checkpoint_period_s seconds with new updates (a crash costs at most that). On start a
checkpoint in run_dir is resumed (counters, networks, optimisers, replay) and its weights
broadcast. On SIGINT/SIGTERM the worker stops, unfinished episodes are stored as truncated and
a final checkpoint is written. With train false the node only serves the actor of
`checkpoint` (or run_dir): a learner or core.pipeline checkpoint. With vae_checkpoint set, its
VAE goes out once on `rig/weights` (model 'vae', from a second latched writer, so that late
joiners get the last weights of both models).

Parameters: `rig_ros.core.learner.LearnerConfig` (td3.* and relabel.* nested).
"""

import pathlib
import threading
import time
from typing import Any, Optional, Sequence

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Header, String
import torch

from rig_msgs.msg import Transition, Weights
from rig_ros.core.checkpoints import CheckpointError
from rig_ros.core.learner import Learner, LearnerConfig, load_vae_weights, status_json
from rig_ros.core.policy_runtime import TransitionRecord
from rig_ros.edge.entry import run_node
from rig_ros.edge.log_limits import KeyedThrottle, suffix
from rig_ros.edge.params import declare_config, ParameterError
from rig_ros.interfaces.names import (
    LEARNER, LEARNER_STATUS_TOPIC, POLICY_MODEL, TRANSITION_TOPIC, VAE_MODEL, WEIGHTS_TOPIC)
from rig_ros.interfaces.qos import LATCHED_QOS, TRANSITION_QOS

TRAIN_CHUNK = 16  # updates between checks for broadcasts, checkpoints and stop
LOG_THROTTLE_S = 2.0
TENSORBOARD_PERIOD_S = 2.0  # seconds between TensorBoard points
TENSORBOARD_DIR = 'tensorboard'


def record_from_message(msg: Transition) -> TransitionRecord:
    """Return the arrays of a Transition message."""
    return TransitionRecord(
        int(msg.episode_id), int(msg.step_index), np.asarray(msg.observation, np.float32),
        np.asarray(msg.action, np.float32), np.asarray(msg.next_observation, np.float32),
        np.asarray(msg.goal, np.float32), bool(msg.episode_end), int(msg.policy_version),
        msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)


class LearnerNode(Node):
    """Stores every robot's transitions, trains TD3 in a worker thread, broadcasts weights."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(LEARNER, **kwargs)
        config = declare_config(self, LearnerConfig, read_only=True)
        self.config = config
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        try:
            self.learner = Learner(config)
        except ValueError as error:  # e.g. a 'mahalanobis' reward without the VAE's variance
            self.get_logger().error(f'cannot start the learner: {error}')
            raise ParameterError(str(error)) from None
        # One latched writer per model: a late joiner gets the last weights of each.
        self._weights_publisher = self.create_publisher(Weights, WEIGHTS_TOPIC, LATCHED_QOS)
        self._vae_publisher = self.create_publisher(Weights, WEIGHTS_TOPIC, LATCHED_QOS)
        self._status_publisher = self.create_publisher(String, LEARNER_STATUS_TOPIC, LATCHED_QOS)
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        self._throttle = KeyedThrottle(LOG_THROTTLE_S)
        self._prepare()
        self._writer = self._tensorboard() if config.train else None
        if config.train:
            self.create_subscription(Transition, TRANSITION_TOPIC, self.transition_callback,
                                     TRANSITION_QOS)
            self._worker = threading.Thread(target=self.train_loop, name='learner training',
                                            daemon=True)
            self._worker.start()
        self.create_timer(config.status_period_s, self.status_callback)
        self.status_callback()

    def _prepare(self) -> None:
        """Resume run_dir's checkpoint (training) or load the served actor; broadcast it."""
        config = self.config
        try:
            if config.vae_checkpoint:
                version, config_json, data = load_vae_weights(config.vae_checkpoint,
                                                              config.latent_dim)
                self._vae_publisher.publish(Weights(
                    header=Header(stamp=self.get_clock().now().to_msg()),
                    model_name=VAE_MODEL, version=version, config_json=config_json,
                    safetensors=data))
                self.get_logger().info(f'VAE weights version {version} of '
                                       f'{config.vae_checkpoint} broadcast')
            if not config.train:
                path = self.learner.load_actor(config.checkpoint or config.run_dir)
                self.get_logger().info(f'serving the policy of {path}')
                self.broadcast()
                return
            if config.run_dir and self.learner.resume(config.run_dir):
                self.get_logger().info(
                    f'resumed {config.run_dir}: {self.learner.status()["stored"]} transitions '
                    f'stored, {self.learner.updates} updates')
                for skipped in self.learner.skipped_files:
                    self.get_logger().error(f'skipped an unreadable episode file {skipped}')
                if self.learner.weights_version:
                    self.broadcast()
            if config.run_dir:
                self.learner.record_episodes(config.run_dir)
        except (OSError, ValueError) as error:  # CheckpointError is a ValueError
            kind = 'checkpoint' if isinstance(error, CheckpointError) else 'run'
            self.get_logger().error(f'cannot use the {kind}: {error}')
            raise ParameterError(str(error)) from None

    def transition_callback(self, msg: Transition) -> None:
        """Check and store one transition; log anything unusual."""
        record = record_from_message(msg)
        verdict = self.learner.ingest(msg.robot_id, record)
        if verdict == 'invalid':
            problem = self.learner.problem(record)
            if self._throttle.due(problem.split(':')[0]):
                self.get_logger().error(
                    f'rejected transition {msg.robot_id} episode {msg.episode_id} step '
                    f'{msg.step_index}: {problem}{suffix(self._throttle)}')
        elif verdict not in ('stored', 'pending'):
            self.get_logger().warning(
                f'transition {msg.robot_id} episode {msg.episode_id} step {msg.step_index}: '
                f'{verdict}', throttle_duration_sec=LOG_THROTTLE_S)

    def _tensorboard(self) -> Any:
        """Return a SummaryWriter on run_dir/tensorboard, None when off or unavailable."""
        if not (self.config.tensorboard and self.config.run_dir):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            self.get_logger().warning(f'no TensorBoard logs: {error}')
            return None
        path = pathlib.Path(self.config.run_dir) / TENSORBOARD_DIR
        self.get_logger().info(f'TensorBoard logs in {path}')
        return SummaryWriter(str(path))

    def write_scalars(self, last: dict[str, float]) -> None:
        """Add one TensorBoard point (losses, Q, goal distances, rates) if one is due."""
        now = time.monotonic()
        if self._writer is None or now - last.get('time', 0.0) < TENSORBOARD_PERIOD_S:
            return
        learner = self.learner
        updates, stored = learner.updates, learner.counts['stored']
        step = stored
        for name, value in learner.last_metrics.items():
            self._writer.add_scalar(f'train/{name}', value, step)
        distances = [learner.goal_distances.popleft()
                     for _ in range(len(learner.goal_distances))]
        if distances:
            self._writer.add_scalar('episodes/final_latent_goal_distance',
                                    float(np.mean(distances)), step)
        if 'time' in last:
            elapsed = now - last['time']
            self._writer.add_scalar('rate/transitions_per_s',
                                    (stored - last['stored']) / elapsed, step)
            self._writer.add_scalar('rate/updates_per_s',
                                    (updates - last['updates']) / elapsed, step)
        self._writer.add_scalar('train/updates', updates, step)
        self._writer.flush()
        last.update(time=now, stored=stored, updates=updates)

    def train_loop(self) -> None:
        """Worker thread: pay owed updates, broadcast and checkpoint when due."""
        scalars: dict[str, float] = {}
        try:
            while not self._stop.is_set():
                done = self.learner.train(TRAIN_CHUNK)
                self.write_scalars(scalars)
                if self.learner.broadcast_due():
                    self.broadcast()
                if self.learner.checkpoint_due() and self.config.run_dir:
                    self.learner.save(self.config.run_dir)
                if not done:
                    self._stop.wait(0.01)
        except Exception as error:  # noqa: BLE001 - a dead worker must say why
            self.get_logger().fatal(f'training stopped: {error!r}')
            raise

    def broadcast(self) -> None:
        """Publish a new version of the policy weights (latched)."""
        version, config_json, data = self.learner.policy_weights()
        msg = Weights()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.model_name = POLICY_MODEL
        msg.version = version
        msg.config_json = config_json
        msg.safetensors = data
        self._weights_publisher.publish(msg)
        self.get_logger().info(f'policy weights version {version} broadcast '
                               f'({self.learner.updates} updates, {len(data)} bytes)')

    def status_callback(self) -> None:
        """Log and publish the counters."""
        status = self.learner.status()
        if self._worker is not None and not self._worker.is_alive() and not self._stop.is_set():
            status['error'] = 'training worker died'
        text = status_json(status)
        self.get_logger().info(f'status {text}')
        self._status_publisher.publish(String(data=text))

    def on_shutdown(self) -> None:
        """Stop training, keep unfinished episodes, write the final checkpoint."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
            if self.config.run_dir:
                self.learner.flush_open_episodes()
                path = self.learner.save(self.config.run_dir)
                self.get_logger().info(f'checkpoint written: {path}')
        if self._writer is not None:
            self._writer.close()
        self.status_callback()


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the learner node until SIGINT/SIGTERM."""
    return run_node(LearnerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
