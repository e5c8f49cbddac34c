"""The sawyer_driver's 100 Hz control cycle: which way of running it keeps its rate.

A `fake_sawyer` process publishes joint and endpoint states at 100 Hz (as intera does); in this
process a node subscribes to both, as the driver does, and runs a 100 Hz cycle five ways, one
after the other in the same run:
- `mt_timer`: an rclpy timer on a MultiThreadedExecutor(3), timer and subscriptions in one
  mutually exclusive group (the driver before this benchmark);
- `st_timer`: an rclpy timer on a SingleThreadedExecutor;
- `loop_thread`: `rig_ros.robot.periodic.PeriodicLoop` on its own thread, subscriptions on a
  SingleThreadedExecutor (the driver now);
- `st_timer_busy` and `loop_thread_busy`: the same two with a slow callback on the executor as
  well (10 Hz, `--busy-ms` of work each, as a large camera frame relayed or a service would be).
Each cycle costs what the driver's does (`SawyerDriver.tick`, ~0.5 ms). Reported per variant:
cycles/s, joint states taken/s, cycle interval p50/p99/max. The driver must re-send commands
well inside intera's 0.2 s command timeout, at its 100 Hz.

Readable lines first; the last line is JSON (`<variant>_hz`, `<variant>_p99_ms`, ...,
`loop_vs_mt_rate_ratio`). Exit 0 whatever the figures.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional

from graph_latency import percentiles

from rig_ros.run.domains import reserve_domain_id

PERIOD_S = 0.01
VARIANTS = ('mt_timer', 'st_timer', 'loop_thread', 'st_timer_busy', 'loop_thread_busy')
RESET = (-0.297, -1.0206, 0.0393, 1.7965, -0.0288, 0.7954, 3.0729)


def make_tick() -> Callable[[], None]:
    """Return one driver cycle's worth of work (the real SawyerDriver.tick)."""
    import numpy as np

    from rig_ros.robot.control import ControllerConfig
    from rig_ros.robot.driver import DriverConfig, SawyerDriver
    from rig_ros.robot.safety import SafetyConfig

    driver = SawyerDriver(DriverConfig(), SafetyConfig(reset_joint_positions=RESET),
                          ControllerConfig())
    driver.set_active(True, time.monotonic())
    q = np.array(RESET)

    def tick() -> None:
        now = time.monotonic()
        driver.state_received(now)
        driver.command(np.array([0.05, 0.0, 0.0]), now)
        driver.tick(q, now)
    return tick


def run_variant(variant: str, duration_s: float, busy_ms: float) -> dict[str, float]:
    """Run one variant for `duration_s`; return its figures."""
    import numpy as np
    import rclpy
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from rig_ros.interfaces.names import STANDIN_SUFFIX

    from rig_ros.interfaces.names import ENDPOINT_STATE_TOPIC, JOINT_STATES_TOPIC
    from rig_ros.interfaces.qos import ARM_QOS
    from rig_ros.robot.periodic import PeriodicLoop

    context = Context()
    rclpy.init(context=context)
    node = Node(f'driver_cycle_{variant}', context=context)
    group = MutuallyExclusiveCallbackGroup() if variant == 'mt_timer' else None
    counts = {'states': 0}
    cycle_times: list[float] = []
    tick = make_tick()

    def on_state(_: Any) -> None:
        counts['states'] += 1

    def cycle() -> None:
        cycle_times.append(time.monotonic())
        tick()

    node.create_subscription(JointState, JOINT_STATES_TOPIC, on_state, ARM_QOS,
                             callback_group=group)
    node.create_subscription(Float64MultiArray, ENDPOINT_STATE_TOPIC + STANDIN_SUFFIX,
                             lambda _: None, ARM_QOS, callback_group=group)
    if variant.endswith('_busy'):
        def busy() -> None:
            end = time.perf_counter() + busy_ms / 1000
            while time.perf_counter() < end:
                pass
        node.create_timer(0.1, busy)
    loop: Optional[PeriodicLoop] = None
    if variant.startswith('loop_thread'):
        loop = PeriodicLoop(PERIOD_S, cycle, name='bench_loop')
    else:
        node.create_timer(PERIOD_S, cycle, callback_group=group)
    executor = (MultiThreadedExecutor(num_threads=3, context=context) if variant == 'mt_timer'
                else SingleThreadedExecutor(context=context))
    executor.add_node(node)
    settle = time.monotonic() + 2.0  # discovery
    while time.monotonic() < settle:
        executor.spin_once(timeout_sec=0.1)
    counts['states'] = 0
    cycle_times.clear()
    if loop is not None:
        loop.start()
    started = time.monotonic()
    while time.monotonic() - started < duration_s:
        executor.spin_once(timeout_sec=0.1)  # as rig_ros.edge.entry.run_node spins
    elapsed = time.monotonic() - started
    if loop is not None:
        loop.stop()
    executor.shutdown(timeout_sec=1.0)
    node.destroy_node()
    context.try_shutdown()
    intervals = np.diff(cycle_times) if len(cycle_times) > 1 else np.array([np.nan])
    spread = percentiles(intervals)
    return {'hz': len(cycle_times) / elapsed, 'states_hz': counts['states'] / elapsed,
            'p50_ms': spread['p50'], 'p99_ms': spread['p99'],
            'max_ms': float(np.max(intervals)) * 1e3}


def main(argv: Optional[list[str]] = None) -> int:
    """Start the fake Sawyer, run every variant, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='3 s per variant instead of 10')
    parser.add_argument('--seconds', type=float, default=None, help='seconds per variant')
    parser.add_argument('--busy-ms', type=float, default=30.0,
                        help='work of the slow executor callback in the _busy variants')
    args = parser.parse_args(argv)
    duration_s = args.seconds or (3.0 if args.quick else 10.0)

    from rig_ros.graph import NodeSpec
    from rig_ros.run import runner

    domain, lock = reserve_domain_id()
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    params_dir = tempfile.TemporaryDirectory(prefix='rig_bench_driver_')
    spec = NodeSpec('fake_sawyer', 'fake_sawyer', '/',
                    {'message_types': 'standin', 'camera_rate_hz': 0.0}, (), ())
    fake = subprocess.Popen(runner.node_command(spec, params_dir.name),
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    result: dict[str, Any] = {'seconds_per_variant': duration_s, 'cpus': os.cpu_count(),
                              'load_average_1m': os.getloadavg()[0]}
    try:
        time.sleep(2.0)
        for variant in VARIANTS:
            figures = run_variant(variant, duration_s, args.busy_ms)
            print(f'{variant:16s} cycles {figures["hz"]:6.1f} Hz, joint states taken '
                  f'{figures["states_hz"]:6.1f} Hz, interval p50 {figures["p50_ms"]:.1f} ms, '
                  f'p99 {figures["p99_ms"]:.1f} ms, max {figures["max_ms"]:.1f} ms', flush=True)
            result.update({f'{variant}_{key}': round(value, 2)
                           for key, value in figures.items()})
    finally:
        fake.terminate()
        fake.wait(10)
        lock.close()
    result['loop_vs_mt_rate_ratio'] = round(result['loop_thread_hz'] / result['mt_timer_hz'], 2)
    result['busy_loop_vs_timer_max_ratio'] = round(
        result['loop_thread_busy_max_ms'] / result['st_timer_busy_max_ms'], 2)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
