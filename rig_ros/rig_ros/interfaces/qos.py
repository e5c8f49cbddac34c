"""QoS profiles of the whole graph, one place.

- SENSOR_QOS: camera/image_raw, rig/image, rig/latent. Best effort, keep last 1: a slow
  subscriber sees the newest frame, stale frames are dropped, never queued.
- LATCHED_QOS: rig/goal, rig/weights, rig/learner_status. Reliable, transient local, depth 1:
  a late joiner gets the last message.
- WEIGHTS_QOS: subscriptions to rig/weights. Latched like LATCHED_QOS but 4 deep: the
  learner keeps one latched writer per model ('vae', 'policy'), a late joiner receives the
  last message of each at once, and a depth-1 reader loses all but one (measured).
- COMMAND_QOS: ee_velocity. Reliable, keep last 1: only the newest command matters.
- STATE_QOS: robot/state, sim/ground_truth. Reliable, keep last 1.
- ARM_QOS: intera's joint states and commands: the newest matters; reliable so that a bridge
  (reliable) matches.
- TRANSITION_QOS: rig/transition. Reliable with a deep queue: the learner should see every
  step, a slow learner applies back-pressure instead of losing data.
- EPISODE_END_QOS: the goal scheduler's reader of episode ends: rare, must not be missed.
- STATE_READER_QOS / GOAL_READER_QOS: a session operator's readers, deeper than the writers
  so that a busy operator keeps every frame's state and every goal; the goal scheduler's
  and the policy's readers of hand positions too.
"""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def _profile(depth: int, reliable: bool, latched: bool = False) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                    else DurabilityPolicy.VOLATILE))


SENSOR_QOS = _profile(1, reliable=False)
LATCHED_QOS = _profile(1, reliable=True, latched=True)
WEIGHTS_QOS = _profile(4, reliable=True, latched=True)
COMMAND_QOS = _profile(1, reliable=True)
STATE_QOS = _profile(1, reliable=True)
ARM_QOS = _profile(1, reliable=True)
TRANSITION_QOS = _profile(1000, reliable=True)
EPISODE_END_QOS = _profile(10, reliable=True)
STATE_READER_QOS = _profile(200, reliable=True)
GOAL_READER_QOS = _profile(10, reliable=True, latched=True)
