"""learner: the fleet's one learner: the run's stages, transitions in, VAE and policy out.

The run (`rig_ros.core.practice_run.PracticeRun`) goes explore -> pretrain -> practise in
run_dir (default `$ROS_HOME/rig_ros/practice`), resumed after any stop, a kill included:
- explore: exploration Transitions (vae_version 0, empty latents, with their frames) become
  the VAE's training frames, until explore_frames are kept;
- pretrain: the worker thread trains the VAE (vae_steps minibatches), publishing
  reconstructions on `rig/reconstruction` (sensor_msgs/Image rgb8, best effort: frame |
  reconstruction rows) every reconstruction_period_s, then broadcasts it on `rig/weights`
  (model 'vae', version 1);
- practise: the exploration, encoded, seeds the replay; practice Transitions whose latents
  are of the replay's VAE version are stored, TD3 trains, policy weights go out every
  broadcast_every updates; with fine_tune_vae_every the VAE is fine-tuned on the replay's
  frames (up to fine_tune_vae_until stored transitions; 0: to the end) and each new version
  is broadcast.
With vae_checkpoint set the run practises at once with that VAE. A training run with neither
vae_checkpoint nor run_dir cannot explore: the node exits with a parameter error.

Subscribes `rig/transition` (rig_msgs/Transition from every robot; reliable, keep-last 1000,
so none is lost while the callback keeps up, which it does: it only checks and stores).
Publishes `rig/weights` (rig_msgs/Weights, latched, one writer per model so a late joiner
gets the last of each: 'policy' with increasing versions, 'vae') and `rig/learner_status`
(std_msgs/String, latched JSON: counters, refusals by kind, updates, weights_version and the
stage: stage, waiting_for, progress, frames, vae_step, vae_version, ...; with
frame_goals_hand_box, frame_goals_in_hand_box: the replay frames relabelling may imagine from,
0 while no policy sends hands), also logged every
status_period_s. Each stage change is logged with the wall time. TensorBoard scalars
(run_dir/tensorboard): training, and while pretraining vae/loss, vae/recon, vae/kl,
vae/holdout_recon (vae/skew_effective_frames with Skew-Fit) and stage (0 explore, 1 pretrain,
2 practise).
Skew-Fit (`skew_fit.alpha` < 0, with imagined_goals 'frames'): pretraining and fine-tuning
draw the VAE's minibatches by skewed weight (unless `skew_fit.skew_vae` is false), relabelling
draws the replay's latents by it.

On start the node logs the absolute run directory and what it holds (stage, frames, VAE
step, transitions, updates) and re-broadcasts the VAE and the policy weights it has. On
SIGINT/SIGTERM the worker stops, waiting frames, the pretraining and unfinished episodes are
written and a final checkpoint saved. With train false the node only serves the actor of
`checkpoint` (or run_dir): a learner or core.pipeline checkpoint, and the VAE of
vae_checkpoint if set.

Parameters: `rig_ros.core.learner.LearnerConfig` (td3.*, relabel.*, vae.*, skew_fit.* nested).
"""

import datetime
import pathlib
import threading
import time
from typing import Any, Optional, Sequence

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
import torch

from rig_msgs.msg import Transition, Weights
from rig_ros.core.checkpoints import CheckpointError
from rig_ros.core.learner import LearnerConfig, load_vae_weights, status_json
from rig_ros.core.policy_runtime import TransitionRecord
from rig_ros.core.practice_run import Event, PracticeRun
from rig_ros.edge.entry import run_node
from rig_ros.edge.image_msgs import array_to_image, image_to_array
from rig_ros.edge.log_limits import KeyedThrottle, suffix
from rig_ros.edge.params import declare_config, ParameterError
from rig_ros.edge.stamps import seconds
from rig_ros.interfaces.names import (
    LEARNER, LEARNER_STATUS_TOPIC, POLICY_MODEL, RECONSTRUCTION_TOPIC, TRANSITION_TOPIC,
    VAE_MODEL, WEIGHTS_TOPIC)
from rig_ros.interfaces.qos import LATCHED_QOS, SENSOR_QOS, TRANSITION_QOS

LOG_THROTTLE_S = 2.0
TENSORBOARD_PERIOD_S = 2.0  # seconds between TensorBoard points
TENSORBOARD_DIR = 'tensorboard'
IDLE_WAIT_S = 0.01  # the worker's pause when nothing waits
STAGE_NUMBERS = {'explore': 0, 'pretrain': 1, 'practise': 2}  # the 'stage' scalar


def _frame(image: Image) -> Optional[np.ndarray]:
    """Return an rgb8 frame of a Transition, None when not sent (or not decodable)."""
    if not image.width or not image.height:
        return None
    try:
        return image_to_array(image)
    except ValueError:
        return None


def record_from_message(msg: Transition) -> TransitionRecord:
    """Return the arrays of a Transition message."""
    return TransitionRecord(
        int(msg.episode_id), int(msg.step_index), np.asarray(msg.observation, np.float32),
        np.asarray(msg.action, np.float32), np.asarray(msg.next_observation, np.float32),
        np.asarray(msg.goal, np.float32), bool(msg.episode_end), int(msg.policy_version),
        seconds(msg.header.stamp), image=_frame(msg.image),
        next_image=_frame(msg.next_image), vae_version=int(msg.vae_version),
        next_vae_version=int(msg.next_vae_version), hand=_hand(msg.hand),
        next_hand=_hand(msg.next_hand))


def _hand(values: Sequence[float]) -> Optional[np.ndarray]:
    """Return a Transition's hand position, None when not sent."""
    return np.asarray(values, np.float32) if len(values) else None


def wall_time() -> str:
    """Return the local wall time, for stage logs."""
    return datetime.datetime.now().astimezone().isoformat(timespec='seconds')


class LearnerNode(Node):
    """Runs the practice run's stages: frames, VAE, TD3 in a worker thread; broadcasts."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(LEARNER, **kwargs)
        config = declare_config(self, LearnerConfig, read_only=True)
        self.config = config
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        try:
            self.practice = PracticeRun(config)
        except ValueError as error:  # no run_dir, a mahalanobis reward without a VAE, a held dir
            self.get_logger().error(f'cannot start the learner: {error}')
            raise ParameterError(str(error)) from None
        self.learner = self.practice.learner
        # One latched writer per model: a late joiner gets the last weights of each.
        self._weights_publisher = self.create_publisher(Weights, WEIGHTS_TOPIC, LATCHED_QOS)
        self._vae_publisher = self.create_publisher(Weights, WEIGHTS_TOPIC, LATCHED_QOS)
        self._status_publisher = self.create_publisher(String, LEARNER_STATUS_TOPIC, LATCHED_QOS)
        self._reconstruction_publisher = self.create_publisher(Image, RECONSTRUCTION_TOPIC,
                                                               SENSOR_QOS)
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
        """Resume the run (training) or load the served actor; broadcast what there is."""
        config = self.config
        try:
            found = self.practice.resume()
            if not config.train:
                path = self.learner.load_actor(config.checkpoint or config.run_dir)
                self.get_logger().info(f'serving the policy of {path}')
            else:
                self.get_logger().info(f'{wall_time()} {found}')
            vae_file = self.practice.vae_weights_file()
            if vae_file is not None:
                self.broadcast_vae(vae_file)
            if not config.train or self.learner.weights_version:
                self.broadcast()
        except (OSError, ValueError) as error:  # CheckpointError is a ValueError
            kind = 'checkpoint' if isinstance(error, CheckpointError) else 'run'
            self.get_logger().error(f'cannot use the {kind}: {error}')
            raise ParameterError(str(error)) from None
        if config.train:
            self.get_logger().info(f'{wall_time()} stage {self.practice.stage}: '
                                   f'{self.practice.status()["waiting_for"]}')

    def transition_callback(self, msg: Transition) -> None:
        """Check and keep one transition; log anything unusual."""
        record = record_from_message(msg)
        verdict = self.practice.ingest(msg.robot_id, record)
        if verdict == 'invalid':
            problem = (self.practice.frame_problem(record) if record.vae_version == 0
                       and record.observation.size == 0 else self.learner.problem(record))
            if self._throttle.due(problem.split(':')[0]):
                self.get_logger().error(
                    f'rejected transition {msg.robot_id} episode {msg.episode_id} step '
                    f'{msg.step_index}: {problem}{suffix(self._throttle)}')
        elif verdict not in ('stored', 'pending', 'frame'):
            if self._throttle.due(verdict):
                self.get_logger().warning(
                    f'transition {msg.robot_id} episode {msg.episode_id} step '
                    f'{msg.step_index} (VAE versions {msg.vae_version}/{msg.next_vae_version})'
                    f' refused in stage {self.practice.stage}: {verdict}{suffix(self._throttle)}')

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
        if self.practice.stage != 'practise':
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

    def _pretrain_scalars(self, metrics: dict[str, float]) -> None:
        if self._writer is None:
            return
        step = int(metrics.get('step', 0))
        for name in ('loss', 'recon', 'kl', 'holdout_recon', 'skew_effective_frames'):
            if name in metrics:
                self._writer.add_scalar(f'vae/{name}', metrics[name], step)
        self._writer.add_scalar('stage', STAGE_NUMBERS[self.practice.stage], step)

    def train_loop(self) -> None:
        """Worker thread: the run's stages; publish what they report."""
        scalars: dict[str, float] = {}
        try:
            while not self._stop.is_set():
                work = self.practice.work()
                for event in work.events:
                    self.handle_event(event)
                self.write_scalars(scalars)
                if not work.busy:
                    self._stop.wait(IDLE_WAIT_S)
        except Exception as error:  # noqa: BLE001 - a dead worker must say why
            self.get_logger().fatal(f'training stopped: {error!r}')
            raise

    def handle_event(self, event: Event) -> None:
        """Publish or log one event of the run."""
        if event.kind == 'policy':
            self.broadcast()
        elif event.kind == 'vae':
            self.get_logger().info(f'{wall_time()} {event.text}')
            self.broadcast_vae(event.path)
        elif event.kind == 'stage':
            self.get_logger().info(f'{wall_time()} {event.text}')
            if self._writer is not None:
                self._writer.add_scalar('stage', STAGE_NUMBERS[self.practice.stage],
                                        self.learner.counts['stored'])
            self.status_callback()
        elif event.kind == 'pretrain':
            self._pretrain_scalars(event.metrics)
        elif event.kind == 'reconstruction' and event.image is not None:
            header = Header(stamp=self.get_clock().now().to_msg())
            self._reconstruction_publisher.publish(array_to_image(event.image, header=header))

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

    def broadcast_vae(self, path: str | pathlib.Path) -> None:
        """Publish the VAE of a checkpoint file or run directory (latched, model 'vae')."""
        version, config_json, data = load_vae_weights(path, self.config.latent_dim)
        self._vae_publisher.publish(Weights(
            header=Header(stamp=self.get_clock().now().to_msg()), model_name=VAE_MODEL,
            version=version, config_json=config_json, safetensors=data))
        self.get_logger().info(f'VAE weights version {version} of {path} broadcast')

    def status_callback(self) -> None:
        """Log and publish the counters."""
        status = self.practice.status()
        if self._worker is not None and not self._worker.is_alive() and not self._stop.is_set():
            status['error'] = 'training worker died'
        text = status_json(status)
        self.get_logger().info(f'status {text}')
        self._status_publisher.publish(String(data=text))

    def on_shutdown(self) -> None:
        """Stop the worker, keep frames, pretraining and episodes, write the checkpoint."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
            path = self.practice.shutdown()
            if path is not None:
                self.get_logger().info(f'checkpoint written: {path}')
        if self._writer is not None:
            self._writer.close()
        self.status_callback()


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the learner node until SIGINT/SIGTERM."""
    return run_node(LearnerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
