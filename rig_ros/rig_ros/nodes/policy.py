"""policy: latents (frames while exploring) and a goal in, velocity commands and transitions out.

Subscribes `rig/latent` (rig_msgs/LatentState, sensor QoS), `rig/image` (camera_pipeline's
84x84 rgb8 frames, sensor QoS), `rig/goal` (rig_msgs/Goal, latched), `rig/weights`
(rig_msgs/Weights, WEIGHTS_QOS; model 'policy' only, a bad payload is logged and the old
weights kept) and `robot/state` (geometry_msgs/PointStamped, the hand). Publishes
`ee_velocity` (geometry_msgs/TwistStamped: linear x/y = action * max_speed_m_s, in frame_id)
and `rig/transition` (rig_msgs/Transition, reliable, deep queue).
Serves `policy/activate` (std_srvs/SetBool): the policy stays inactive until activated unless
start_active is set (the practice graph sets it for simulated robots).

Decisions are `rig_ros.core.policy_runtime.PolicyRuntime`'s. Practice episodes act on latents
(observations of rig/latent). A goal with source 'explore' (the run's explore stage, before
any VAE; an empty mean) starts an exploration episode that acts on frames instead: uniform
random actions in [-1, 1], each held explore_hold_steps steps, no policy weights; with
explore_aimed_pushes a share of them are pushes aimed at the puck a calibrated colour tracker
finds in the frame (puck_tracker_file, written by `rig calibrate-tracker`; a missing or bad
file refuses to start, as a bad parameter does), steered by robot/state. Timer mode
(real time): a command at control_rate_hz on the newest observation, zeros when the policy may
not act (inactive, no goal or observation, an observation older than stale_after_s, the
episode's steps used up, non-finite values). act_on_latent mode (lockstep sims, where every
command advances the sim): a command per new latent (per new frame while exploring), and one
zero command per new reason to stand still. On SIGINT/SIGTERM a zero command goes out first.

Transitions: practice ones carry both latents, their VAE versions (LatentState.model_version)
and, unless transition_images is false, the frames whose header stamps equal the latents'
stamps (the node keeps the last 30 frames; an empty Image when one is missing). Exploration
ones carry empty latents and goal, VAE and policy versions 0, and the frame acted on and the
next frame. Both carry the hand at each of their two frames: the robot/state nearest to the
frame's stamp within hand_stamp_tolerance_s (empty when none), for the learner's hand-box
goals. Frames are converted after the command is published, never before it.

In a composed chain (`robot_chain`) camera_pipeline and vae_encoder hand their frames and
latents over directly, in process (`frame_hand_off`, `latent_hand_off`); the same messages arriving
over DDS are then skipped. It runs on rclpy's EventsExecutor
(`rig_ros.edge.entry.FRAME_PATH_EXECUTOR`; RIG_ROS_EXECUTOR=single for the SingleThreadedExecutor).

A latent or goal with non-finite values or a size that does not fit is logged as an error
(each distinct problem, throttled) and stops the robot until good ones arrive; so is a frame
that is not image_size x image_size rgb8 (it is ignored: exploration waits for good frames);
weights of an unknown model are logged and ignored.

Parameters: `rig_ros.core.policy_runtime.PolicyConfig`.
"""

import dataclasses
import time
from typing import Any, Optional, Sequence

from geometry_msgs.msg import PointStamped, TwistStamped
import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool
import torch

from rig_msgs.msg import Goal, LatentState, Transition, Weights
from rig_ros.core.policy_runtime import (
    EpisodeGoal, Frame, Latent, PolicyConfig, PolicyRuntime, StepResult)
from rig_ros.edge.entry import executor_factory, FRAME_PATH_EXECUTOR, run_node
from rig_ros.edge.image_msgs import array_to_image, image_to_array
from rig_ros.edge.log_limits import KeyedThrottle, suffix
from rig_ros.edge.params import declare_config, ParameterError
from rig_ros.edge.sequences import HandedOver
from rig_ros.edge.stamps import seconds
from rig_ros.interfaces.names import (
    ACTIVATE_SERVICE, EE_VELOCITY_TOPIC, GOAL_TOPIC, IMAGE_TOPIC, KNOWN_MODELS, LATENT_TOPIC,
    POLICY, POLICY_MODEL, ROBOT_STATE_TOPIC, TRANSITION_TOPIC, WEIGHTS_TOPIC)
from rig_ros.interfaces.qos import (
    COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, STATE_READER_QOS, TRANSITION_QOS, WEIGHTS_QOS)

LOG_REPEAT_S = 5.0
SHUTDOWN_ACK_S = 0.5  # wait for the final zero command to be acknowledged
ROUTINE_REASONS = ('episode over', 'latent older than the episode',
                   'frame older than the episode')
FRAME_ENCODING = 'rgb8'  # camera_pipeline's


class PolicyNode(Node):
    """Acts towards the goal of the current episode and reports its transitions."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(POLICY, **kwargs)
        # One small MLP per latent: a thread pool only adds wakeups on a shared machine.
        torch.set_num_threads(1)
        config = declare_config(self, PolicyConfig, read_only=True)
        if not config.robot_id:
            config = dataclasses.replace(
                config, robot_id=self.get_namespace().strip('/') or POLICY)
        self.config = config
        try:
            self.runtime = PolicyRuntime(config)
        except ValueError as error:  # the tracker file of aimed exploration pushes
            self.get_logger().error(f'parameter puck_tracker_file: {error}')
            raise ParameterError(str(error)) from None
        self._reason = ''  # why the last decision did not act ('' after acting)
        self._logged = ('', 0.0)  # last reason logged, monotonic time
        self._throttle = KeyedThrottle(LOG_REPEAT_S)
        self._velocity_publisher = self.create_publisher(
            TwistStamped, EE_VELOCITY_TOPIC, COMMAND_QOS)
        self._transition_publisher = (self.create_publisher(
            Transition, TRANSITION_TOPIC, TRANSITION_QOS) if config.publish_transitions else None)
        # What a composed chain hands over in process, and the DDS copies to skip.
        self.latent_hand_off = HandedOver(self.latent_callback)
        self.frame_hand_off = HandedOver(self.frame_callback)
        # Frames first: the executor serves ready subscriptions in creation order, and a
        # latent taken before its own frame (both waiting at one wake-up) left its transition
        # without next_image (23 % of a fine-tuning run's practice steps, which the learner
        # refused: its replay keeps frames).
        self._frame_subscription = self.create_subscription(
            Image, IMAGE_TOPIC, self.frame_hand_off.taken, SENSOR_QOS)
        self._latent_subscription = self.create_subscription(
            LatentState, LATENT_TOPIC, self.latent_hand_off.taken, SENSOR_QOS)
        # The hand at each frame goes with the transitions (the learner's hand-box goals).
        self.create_subscription(PointStamped, ROBOT_STATE_TOPIC, self.state_callback,
                                 STATE_READER_QOS)
        self.create_subscription(Goal, GOAL_TOPIC, self.goal_callback, LATCHED_QOS)
        self.create_subscription(Weights, WEIGHTS_TOPIC, self.weights_callback, WEIGHTS_QOS)
        self.create_service(SetBool, ACTIVATE_SERVICE, self.activate_callback)
        self._timer = (None if config.act_on_latent else
                       self.create_timer(1.0 / config.control_rate_hz, self.timer_callback))
        self.get_logger().info(
            f'robot {config.robot_id}: {"act on latent" if config.act_on_latent else "timer"} '
            f'mode, {"active" if self.runtime.active else "inactive until activated"}')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    @property
    def latent_topic(self) -> str:
        """The resolved topic of the latents acted on."""
        return self._latent_subscription.topic_name

    @property
    def image_topic(self) -> str:
        """The resolved topic of the frames (exploration, transitions)."""
        return self._frame_subscription.topic_name

    def latent_callback(self, msg: LatentState) -> None:
        """Keep the newest latent; in act_on_latent mode decide at once (practice episodes)."""
        mean = np.asarray(msg.mean, np.float32)
        goal = self.runtime.goal
        practising = goal is not None and not goal.exploration
        self.check_input('latent', mean, goal.mean.size if practising else None)
        self.runtime.set_latent(
            Latent(mean, seconds(msg.header.stamp), int(msg.model_version)))
        if self.config.act_on_latent and not self.runtime.exploring:
            self.decide()

    def frame_callback(self, msg: Image) -> None:
        """Keep the newest frame; in act_on_latent mode decide at once (exploration episodes)."""
        try:
            if msg.encoding != FRAME_ENCODING:
                raise ValueError(f'encoding {msg.encoding!r}, not {FRAME_ENCODING}')
            self.runtime.set_frame(Frame(image_to_array(msg), seconds(msg.header.stamp)))
        except ValueError as error:
            if self._throttle.due(f'frame: {error}'):
                self.get_logger().error(f'ignored a frame on {IMAGE_TOPIC}: {error}'
                                        f'{suffix(self._throttle)}')
            return
        if self.config.act_on_latent and self.runtime.exploring:
            self.decide()

    def state_callback(self, msg: PointStamped) -> None:
        """Keep the hand's position for the transitions of the frames taken then."""
        self.runtime.set_hand(seconds(msg.header.stamp),
                              np.array([msg.point.x, msg.point.y, msg.point.z]))

    def goal_callback(self, msg: Goal) -> None:
        """Take the episode's goal; a new episode restarts the step count."""
        goal = EpisodeGoal(np.asarray(msg.mean, np.float32), int(msg.episode_id),
                           int(msg.episode_length), bool(msg.explore), seconds(msg.header.stamp),
                           str(msg.source))
        if not goal.exploration:  # an exploration goal's mean is empty
            latent = self.runtime.latent
            self.check_input(f'goal of episode {msg.episode_id}', goal.mean,
                             latent.mean.size if latent is not None else None)
        if self.runtime.set_goal(goal):
            if goal.exploration:
                mode = f'exploration (random actions held {self.config.explore_hold_steps} steps)'
            else:
                mode = 'exploring' if goal.explore and self.config.explore else 'greedy'
            self.get_logger().info(
                f'episode {goal.episode_id}: length {goal.episode_length or "unlimited"}, {mode}')
        if self.config.act_on_latent:
            self.decide()

    def weights_callback(self, msg: Weights) -> None:
        """Load new policy weights; keep the old ones when the payload is bad."""
        if msg.model_name != POLICY_MODEL:
            if msg.model_name not in KNOWN_MODELS and self._throttle.due(msg.model_name):
                self.get_logger().warning(f'ignored weights of unknown model '
                                          f'{msg.model_name!r} (version {msg.version})')
            return
        if msg.version == self.runtime.version:
            return
        try:
            self.runtime.load_weights(bytes(msg.safetensors), msg.version)
        except ValueError as error:
            self.get_logger().error(f'rejected policy weights version {msg.version}: {error}; '
                                    f'keeping version {self.runtime.version}')
            return
        self.get_logger().info(f'policy weights version {msg.version} loaded')

    def check_input(self, what: str, values: np.ndarray, size: Optional[int]) -> bool:
        """Log an error for a non-finite vector or one of another size; return whether ok."""
        problem = ''
        if not np.isfinite(values).all():
            problem = f'non-finite values {np.array2string(values, precision=3)}'
        elif size is not None and values.size != size:
            problem = f'{values.size} values where the other input has {size}'
        elif values.size == 0:
            problem = 'no values'
        if problem and self._throttle.due(f'{what.split()[0]}: {problem}'):
            self.get_logger().error(f'bad {what}: {problem}; standing still until good input '
                                    f'arrives{suffix(self._throttle)}')
        return not problem

    def activate_callback(self, request: SetBool.Request,
                          response: SetBool.Response) -> SetBool.Response:
        """Start or stop acting; stopping sends a zero command at once."""
        was_active = self.runtime.active
        self.runtime.set_active(bool(request.data))
        response.success = True
        response.message = ('activated' if request.data else 'deactivated') + (
            '' if was_active != bool(request.data) else ' (no change)')
        self.get_logger().info(f'policy {response.message}')
        self.decide()
        return response

    def timer_callback(self) -> None:
        """Timer mode: one command per control period."""
        self.decide()

    def decide(self) -> None:
        """Ask the runtime for a decision; publish the command, then the transition."""
        result = self.runtime.step(self._now())
        reason = '' if result.reason in ('act', 'hold') else result.reason
        changed = reason != self._reason
        self._reason = reason
        # Every command advances a lockstep sim: there, send actions, and one zero command
        # per new reason to stand still (which also steps a sim waiting for a command).
        # The robot waits for the command; the learner's transition and logs come after it
        # (building and sending the transition first delayed every command, 0.5 ms median).
        if not self.config.act_on_latent or result.acted or changed:
            self.publish_velocity(result.velocity)
        if result.transition is not None and self._transition_publisher is not None:
            if (self._transition_publisher.get_subscription_count() == 0
                    and self._throttle.due('no learner')):
                # The topic is volatile: what nobody takes now is gone for good.
                self.get_logger().warning(
                    f'no subscriber on {self._transition_publisher.topic_name}: practice '
                    f'transitions are not recorded until a learner runs{suffix(self._throttle)}')
            self._transition_publisher.publish(self.transition_message(result))
        if changed and reason:
            self.log_reason(reason)

    def log_reason(self, reason: str) -> None:
        """Log why the robot stands still; a flapping reason at most every LOG_REPEAT_S."""
        now = time.monotonic()
        if reason != self._logged[0] or now - self._logged[1] > LOG_REPEAT_S:
            # Between episodes the robot waits every time: not worth an info line each.
            log = (self.get_logger().debug if reason in ROUTINE_REASONS
                   else self.get_logger().info)
            log(f'standing still: {reason}')
            self._logged = (reason, now)

    def publish_velocity(self, velocity: np.ndarray) -> None:
        """Publish (vx, vy) in m/s; anything non-finite becomes zero."""
        if not np.isfinite(velocity).all():
            velocity = np.zeros_like(velocity)
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.config.frame_id
        linear = [float(v) for v in velocity[:3]] + [0.0] * (3 - min(velocity.size, 3))
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = linear
        self._velocity_publisher.publish(msg)

    def transition_message(self, result: StepResult) -> Transition:
        """Build the Transition message of a finished step."""
        record = result.transition
        assert record is not None
        msg = Transition()
        msg.header.stamp = Time(nanoseconds=round(record.stamp * 1e9)).to_msg()
        msg.robot_id = self.config.robot_id
        msg.episode_id = record.episode_id
        msg.step_index = record.step_index
        msg.observation = record.observation.tolist()
        msg.action = record.action.tolist()
        msg.next_observation = record.next_observation.tolist()
        msg.goal = record.goal.tolist()
        msg.episode_end = record.episode_end
        msg.policy_version = record.policy_version
        msg.vae_version = record.vae_version
        msg.next_vae_version = record.next_vae_version
        if record.image is not None:
            msg.image = array_to_image(record.image, FRAME_ENCODING)
        if record.next_image is not None:
            msg.next_image = array_to_image(record.next_image, FRAME_ENCODING)
        if record.hand is not None:
            msg.hand = record.hand.tolist()
        if record.next_hand is not None:
            msg.next_hand = record.next_hand.tolist()
        return msg

    def on_shutdown(self) -> None:
        """Stop the robot: a zero command, acknowledged by the driver, before the node goes."""
        self.runtime.set_active(False)
        self.publish_velocity(np.zeros(self.config.action_dim, np.float32))
        # Destroying the node at once can drop the command before it is sent (seen in
        # test_fake_sawyer_practice): the robot would keep the last velocity until its watchdog.
        self._velocity_publisher.wait_for_all_acked(Duration(seconds=SHUTDOWN_ACK_S))


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the policy node until SIGINT/SIGTERM."""
    return run_node(PolicyNode, args, make_executor=executor_factory(FRAME_PATH_EXECUTOR))


if __name__ == '__main__':
    raise SystemExit(main())
