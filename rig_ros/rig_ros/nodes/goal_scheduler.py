"""goal_scheduler: one robot's episodes and goals (imagined in practice, given when reaching).

Practice (`goal_source: prior`): once a VAE is loaded (`vae_checkpoint` or the latched
`rig/weights` broadcast, model 'vae'), every episode calls `robot/reset` (std_srvs/Trigger;
retried with a log when it fails, is absent, or stays unanswered for `reset_timeout_s`), then
imagines a goal and publishes `rig/goal` (rig_msgs/Goal, latched: episode_id + 1,
episode_length, source 'prior', explore true, stamped after the reset returned) and the
goal's decoding on `rig/goal_image_decoded` (sensor_msgs/Image rgb8, latched, for viewers).
The imagined goal is z ~ N(0, I) (`imagined_goals: prior`, RIG), or with `imagined_goals:
frames` the encoder mean of a frame this robot's camera gave under the current VAE (a uniform
sample of `frame_pool_size` of the `rig/latent` messages seen; the prior until one arrives),
drawn uniformly or, with `skew_alpha` < 0 (Skew-Fit), by weight ~ p(z)^alpha over the kept
latents' density (refitted every `skew_refit_every` frames), so rare scenes are imagined more.
With `frame_goals_hand_box` set, only frames taken with the hand inside that box are kept: the
hand of a frame is the `robot/state` (geometry_msgs/PointStamped, the driver's or the sim's)
nearest to the latent's stamp within `hand_stamp_tolerance_s`; frames without one are left
out, counted in the waiting log.

Exploration (`goal_source: prior`, `explore: true`, no VAE yet): the learner's latched
`rig/learner_status` (std_msgs/String JSON; the graph remaps it to the fleet's) gives its
stage. While it is 'explore', episodes run as in practice (a reset each, then the goal), with
exploration goals: source 'explore', an empty mean, explore true, episode_length, model_version
0 (the policy acts at random; nothing is decoded). Any other stage, or a status without one,
starts no new exploration episode (a running one finishes); the VAE weights then start
practice, episode ids growing on. A malformed status is logged and ignored. While no episode
can start the node logs every 10 s what it waits for (the VAE weights, the learner's stage,
and the learner's own `waiting_for` and `progress`).

Episode ends: the graph remaps `rig/transition` to the fleet's transitions (as for the
policy); the scheduler takes those with its `robot_id` and `episode_end` set (a DDS content
filter drops the others at the writer where the middleware supports it; the callback checks
again). The end of the current episode starts the next one; so does `episode_timeout_s`.
The end of an exploration episode (vae_version 0, no latents) is checked for a finite action only.

Reach (`goal_source: image`, or from the first goal image on): an image on `rig/goal_image`
(sensor_msgs/Image, any size and encoding) is encoded through `rig/encode` (asynchronously;
only the newest waiting image is kept) and published as a Goal with episode_length, source
'image', explore false: the robot reaches for that many steps, then stands still. No resets.
A malformed image (size, step or data that do not agree, an unknown encoding) is logged and
dropped before it is sent, and does not switch a practising scheduler to reaching; an image
the encoder rejects is logged with its reason. An episode end with non-finite or missing
values is logged (the learner drops it) but still ends the episode; weights of an unknown
model are logged and ignored.

Parameters: `rig_ros.core.goals.GoalSchedulerConfig` (read-only).
"""

import time
from typing import Any, Optional, Sequence

from geometry_msgs.msg import PointStamped
import numpy as np
from rclpy.node import Node
from rclpy.subscription_content_filter_options import ContentFilterOptions
from rclpy.task import Future
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger
import torch

from rig_msgs.msg import Goal, LatentState, Transition, Weights
from rig_msgs.srv import Encode
from rig_ros.core.encoder import LatentEncoder, WeightsError
from rig_ros.core.goals import (
    GoalCommand, GoalScheduler, GoalSchedulerConfig, learner_status_summary, parse_learner_status,
    Phase)
from rig_ros.edge.entry import run_node
from rig_ros.edge.image_msgs import array_to_image, image_to_array
from rig_ros.edge.log_limits import KeyedThrottle, suffix
from rig_ros.edge.params import declare_config, ParameterError
from rig_ros.edge.stamps import seconds
from rig_ros.edge.vae_weights import load_vae_weights
from rig_ros.interfaces.names import (
    ENCODE_SERVICE, GOAL_IMAGE_DECODED_TOPIC, GOAL_IMAGE_TOPIC, GOAL_SCHEDULER, GOAL_TOPIC,
    LATENT_TOPIC, LEARNER_STATUS_TOPIC, POLICY, RESET_SERVICE, ROBOT_STATE_TOPIC,
    TRANSITION_TOPIC, WEIGHTS_TOPIC)
from rig_ros.interfaces.qos import (
    EPISODE_END_QOS, LATCHED_QOS, SENSOR_QOS, STATE_READER_QOS, WEIGHTS_QOS)

TICK_S = 0.1
THROTTLE_S = 5.0
WAIT_LOG_S = 10.0  # while no episode can start, say what the scheduler waits for this often


class GoalSchedulerNode(Node):
    """Resets the robot between episodes and publishes each episode's goal."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(GOAL_SCHEDULER, **kwargs)
        self._config = declare_config(self, GoalSchedulerConfig, read_only=True)
        torch.set_num_threads(self._config.torch_threads)
        # As the policy names itself in its transitions (its node name in the root namespace).
        self._robot_id = self._config.robot_id or self.get_namespace().strip('/') or POLICY
        self._scheduler = GoalScheduler(self._config)
        self._encoder = LatentEncoder()
        self._throttle = KeyedThrottle(THROTTLE_S)
        if self._config.vae_checkpoint:
            try:
                self._encoder.load_checkpoint(self._config.vae_checkpoint)
            except WeightsError as error:
                self.get_logger().error(f'parameter vae_checkpoint: {error}')
                raise ParameterError(str(error)) from None
            self._model_loaded()

        self._goal_publisher = self.create_publisher(Goal, GOAL_TOPIC, LATCHED_QOS)
        self._decoded_publisher = self.create_publisher(
            Image, GOAL_IMAGE_DECODED_TOPIC, LATCHED_QOS)
        self._reset_client = self.create_client(Trigger, RESET_SERVICE)
        self._encode_client = self.create_client(Encode, ENCODE_SERVICE)
        self._reset_name = self.resolve_service_name(RESET_SERVICE)
        self._encode_name = self.resolve_service_name(ENCODE_SERVICE)
        self._weights_subscription = self.create_subscription(
            Weights, WEIGHTS_TOPIC, self.weights_callback, WEIGHTS_QOS)
        self._transition_subscription = self.create_subscription(
            Transition, TRANSITION_TOPIC, self.transition_callback, EPISODE_END_QOS,
            content_filter_options=ContentFilterOptions(
                'robot_id = %0 AND episode_end = TRUE', [f"'{self._robot_id}'"]))
        self._image_subscription = self.create_subscription(
            Image, GOAL_IMAGE_TOPIC, self.goal_image_callback, SENSOR_QOS)
        self._status_subscription = self.create_subscription(
            String, LEARNER_STATUS_TOPIC, self.status_callback, LATCHED_QOS)
        self._latent_subscription = (self.create_subscription(
            LatentState, LATENT_TOPIC, self.latent_callback, SENSOR_QOS)
            if self._config.imagined_goals == 'frames' else None)
        self._state_subscription = (self.create_subscription(
            PointStamped, ROBOT_STATE_TOPIC, self.state_callback, STATE_READER_QOS)
            if self._config.frame_goals_hand_box is not None else None)
        self._learner_status: Optional[dict[str, Any]] = None
        self._wait_log_at = 0.0  # when the next "waiting for" line is due
        self._timer = self.create_timer(TICK_S, self.tick_callback)

        self._reset_future: Optional[Future] = None
        self._reset_deadline = 0.0
        self._retry_at = 0.0
        self._waiting_image: Optional[Image] = None
        self._image_deadline = 0.0
        self._encode_future: Optional[Future] = None
        self._encode_deadline = 0.0
        self.get_logger().info(
            f'robot {self._robot_id!r}: goal source {self._config.goal_source!r}, episode ends '
            f'from {self._transition_subscription.topic_name}, learner stage from '
            f'{self._status_subscription.topic_name}, goals on {self._goal_publisher.topic_name}')
        self._log_waiting(time.monotonic())

    @property
    def scheduler(self) -> GoalScheduler:
        """The episode state machine."""
        return self._scheduler

    def _model_loaded(self) -> None:
        config = self._encoder.config
        self.get_logger().info(f'VAE v{self._encoder.version} from {self._encoder.source}: '
                               f'{config.latent_dim} latents')
        self._scheduler.model_ready()

    def latent_callback(self, msg: LatentState) -> None:
        """Keep this robot's frame latents for 'frames' imagined goals."""
        self._scheduler.seen_latent(np.asarray(msg.mean, np.float32), int(msg.model_version),
                                    seconds(msg.header.stamp))

    def state_callback(self, msg: PointStamped) -> None:
        """Keep the hand's recent positions (frame_goals_hand_box)."""
        self._scheduler.seen_hand(seconds(msg.header.stamp),
                                  np.array([msg.point.x, msg.point.y, msg.point.z]))

    def weights_callback(self, msg: Weights) -> None:
        """Load a 'vae' broadcast (latent size and goal decoder); keep the old one if bad."""
        if not load_vae_weights(self, self._encoder, msg, self._throttle):
            return
        self._model_loaded()
        self._request_reset()

    def status_callback(self, msg: String) -> None:
        """Take the learner's stage: exploration episodes run while it is 'explore'."""
        try:
            status = parse_learner_status(msg.data)
        except ValueError as error:
            if self._throttle.due('status'):
                self.get_logger().error(
                    f'ignored a malformed learner status {msg.data[:200]!r}: {error}'
                    f'{suffix(self._throttle)}')
            return
        stage = status.get('stage')
        previous = self._learner_status
        self._learner_status = status
        if previous is None or previous.get('stage') != stage:
            self.get_logger().info(f'learner stage {stage!r}{learner_status_summary(status)}')
            self._wait_log_at = 0.0  # what the scheduler waits for changed: say so at once
        self._scheduler.set_learner_stage(stage)
        self._request_reset()

    def transition_callback(self, msg: Transition) -> None:
        """Start the next episode when this robot's current one ends."""
        if msg.robot_id != self._robot_id or not msg.episode_end:
            return
        # An exploration step has no latents (and no VAE version): only its action counts.
        exploration = msg.vae_version == 0 and not len(msg.observation) and not len(msg.goal)
        names = ('action',) if exploration else (
            'observation', 'action', 'next_observation', 'goal')
        values = [np.asarray(getattr(msg, name), np.float64) for name in names]
        if not all(v.size and np.isfinite(v).all() for v in values) and self._throttle.due(
                'transition'):
            self.get_logger().error(
                f'the end of episode {msg.episode_id} has missing or non-finite values (the '
                f'learner drops it); ending the episode all the same{suffix(self._throttle)}')
        if self._scheduler.episode_end(msg.episode_id):
            self._request_reset()
        elif self._scheduler.phase is Phase.RUNNING and self._throttle.due('episode'):
            self.get_logger().warning(
                f'ignored the end of episode {msg.episode_id}: episode '
                f'{self._scheduler.episode_id} is running{suffix(self._throttle)}')

    def goal_image_callback(self, msg: Image) -> None:
        """Queue a user's goal image for encoding (the newest one replaces a waiting one)."""
        try:
            image_to_array(msg)
        except ValueError as error:
            if self._throttle.due(str(error)):
                self.get_logger().error(
                    f'dropped a malformed goal image ({msg.width}x{msg.height} '
                    f'{msg.encoding!r}, step {msg.step}, {len(msg.data)} bytes): {error}'
                    f'{suffix(self._throttle)}')
            return
        if self._scheduler.phase is not Phase.REACHING:
            self.get_logger().info('goal image received: reaching it instead of practising')
        self._waiting_image = msg
        self._image_deadline = time.monotonic() + self._config.encode_timeout_s
        self._request_encode()

    def tick_callback(self) -> None:
        """Enforce the timeouts and retry what is due."""
        now = time.monotonic()
        if self._reset_future is not None and now >= self._reset_deadline:
            self._reset_client.remove_pending_request(self._reset_future)
            self._reset_future = None
            self._retry_at = now + self._config.retry_period_s
            self.get_logger().error(f'{self._reset_name} did not answer within '
                                    f'{self._config.reset_timeout_s} s; retrying')
        if self._scheduler.timed_out(now):
            self.get_logger().warning(
                f'episode {self._scheduler.episode_id} did not end within '
                f'{self._config.episode_timeout_s} s; starting the next one')
        self._request_reset()
        self._log_waiting(now)
        if self._encode_future is not None and now >= self._encode_deadline:
            self._encode_client.remove_pending_request(self._encode_future)
            self._encode_future = None
            self.get_logger().error(f'{self._encode_name} did not answer within '
                                    f'{self._config.encode_timeout_s} s')
        if self._waiting_image is not None and now >= self._image_deadline:
            self._waiting_image = None
            self.get_logger().error(f'dropped a goal image: {self._encode_name} '
                                    f'unavailable for {self._config.encode_timeout_s} s')
        self._request_encode()

    def _log_waiting(self, now: float) -> None:
        """While no episode can start, say what for (at once, then every WAIT_LOG_S)."""
        if self._scheduler.phase is not Phase.WAITING:
            self._wait_log_at = 0.0
            return
        if now < self._wait_log_at:
            return
        self._wait_log_at = now + WAIT_LOG_S
        self.get_logger().info(self._waiting_for())

    def _waiting_for(self) -> str:
        weights = f'VAE weights on {self._weights_subscription.topic_name}'
        status_topic = self._status_subscription.topic_name
        status = self._learner_status
        if status is None:
            if not self._config.explore:
                return f'waiting for {weights} (explore is false)'
            return f"waiting for {weights} or the learner's stage on {status_topic}"
        stage = status.get('stage')
        if stage is None:
            return (f'waiting for {weights} (the learner on {status_topic} reports no stage: '
                    'it runs no exploration)')
        learner = f'the learner is in stage {stage!r}{learner_status_summary(status)}'
        if stage == 'explore':  # only reached with explore false
            return f'waiting for {weights}; not exploring (explore is false) while {learner}'
        return f'waiting for {weights}: no new episode while {learner}'

    def _request_reset(self) -> None:
        now = time.monotonic()
        if (not self._scheduler.reset_due or self._reset_future is not None
                or now < self._retry_at):
            return
        if not self._reset_client.service_is_ready():
            self.get_logger().warning(f'waiting for {self._reset_name}',
                                      throttle_duration_sec=THROTTLE_S)
            return
        self._reset_deadline = now + self._config.reset_timeout_s
        self._reset_future = self._reset_client.call_async(Trigger.Request())
        self._reset_future.add_done_callback(self._reset_done)

    def _reset_done(self, future: Future) -> None:
        if future is not self._reset_future:
            return  # timed out and abandoned
        self._reset_future = None
        error = future.exception()
        response = future.result() if error is None else None
        if response is None or not response.success:
            self._retry_at = time.monotonic() + self._config.retry_period_s
            reason = error or (response.message if response is not None else 'cancelled')
            self.get_logger().error(f'{self._reset_name} failed ({reason}); '
                                    f'retrying in {self._config.retry_period_s} s')
            return
        latent_dim = self._encoder.config.latent_dim if self._encoder.ready else 0
        goal = self._scheduler.reset_done(latent_dim, time.monotonic())
        if goal is not None:
            self._publish(goal, 0 if goal.source == 'explore' else self._encoder.version)

    def _request_encode(self) -> None:
        if self._waiting_image is None or self._encode_future is not None:
            return
        if not self._encode_client.service_is_ready():
            self.get_logger().warning(f'goal image waiting for {self._encode_name}',
                                      throttle_duration_sec=THROTTLE_S)
            return
        request = Encode.Request(image=self._waiting_image)
        self._waiting_image = None
        self._encode_deadline = time.monotonic() + self._config.encode_timeout_s
        self._encode_future = self._encode_client.call_async(request)
        self._encode_future.add_done_callback(self._encode_done)

    def _encode_done(self, future: Future) -> None:
        if future is not self._encode_future:
            return
        self._encode_future = None
        if self._waiting_image is not None:  # a newer image supersedes this one
            self._request_encode()
            return
        response = future.result() if future.exception() is None else None
        if response is None or not response.success:
            reason = response.message if response is not None else future.exception()
            self.get_logger().error(f'goal image rejected: {reason}')
            return
        goal = self._scheduler.image_goal(np.asarray(response.mean, np.float32))
        self._publish(goal, response.model_version)

    def _publish(self, goal: GoalCommand, model_version: int) -> None:
        msg = Goal(mean=goal.mean.tolist(), episode_id=goal.episode_id,
                   episode_length=goal.episode_length, source=goal.source, explore=goal.explore,
                   model_version=model_version)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._goal_publisher.publish(msg)
        if goal.source == 'explore':
            self.get_logger().info(f'episode {goal.episode_id}: exploration, '
                                   f'{goal.episode_length} steps of random actions')
            return  # no latent goal to decode
        summary = self._scheduler.frame_pool_summary() if goal.source == 'prior' else ''
        pool = f'; {summary}' if summary else ''
        self.get_logger().info(
            f'episode {goal.episode_id}: {goal.source} goal '
            f'{np.array2string(goal.mean, precision=2)} (VAE v{model_version}){pool}')
        if self._encoder.ready and self._encoder.config.latent_dim == goal.mean.size:
            image = self._encoder.decode(goal.mean)
            self._decoded_publisher.publish(array_to_image(image, 'rgb8', msg.header))


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the goal_scheduler node until SIGINT/SIGTERM."""
    return run_node(GoalSchedulerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
