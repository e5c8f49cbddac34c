"""How long the processes of one machine take to find each other over DDS, per Fast DDS setting.

A practice graph is six to eight processes; a test, a goal sender or `rig status` adds one
more, and each must discover the others before any message flows. This bench starts `--peers`
processes in one domain, `--stagger` s apart, as a launch does. Each is an rclpy node that
publishes its index on one topic at 10 Hz and subscribes the same topic (reliable, keep last
10); it notes when its node was created and when it first hears each other peer. A pair's
discovery time is that moment minus the later of the two node creations (one clock, the
machine's); a peer's time to the whole graph is the largest of its pairs. A pair never heard
within the run counts as undiscovered.

Runs: the package's Fast DDS profile (`config/fastdds_rig.xml`, or `--profile`) and Fast DDS's
defaults (`defaults_` keys), alternating, `--repeats` times each, in a domain of its own;
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (as the tests and `make demo`) or `--discovery-range
SUBNET` (as the machines of a fleet). The 1-minute load average at the start of every run is
recorded.

Readable lines first; the last line is JSON: per configuration `pair_p50_s`, `pair_p90_s`,
`pair_max_s`, `whole_graph_median_s`, `whole_graph_max_s`, `undiscovered_pairs`, `pairs`,
the same with `defaults_` in front, and `defaults_over_profile_whole_graph_max` (how many times
longer the slowest peer waits with the defaults). Target: with the profile, every peer hears
every other within 2 s of the later one's start on an idle machine (Fast DDS's 3 s announcement
period allows 3.5 s). Exit 0 whatever the figures.
"""

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from camera_frames import add_transport_arguments, last_json, PREFIXES  # noqa: E402
from camera_frames import stop_process, transport_choices, transport_env  # noqa: E402

from rig_ros.run.domains import reserve_domain_id  # noqa: E402

TOPIC = '/bench_discovery/hello'
PUBLISH_PERIOD_S = 0.1
# The peer processes' imports (rclpy) before the first node is created, at most.
IMPORT_ALLOWANCE_S = 15.0


# A peer (a process of its own: `discovery.py peer ...`).

def peer_main(argv: list[str]) -> int:
    """Create the node after `--delay` s, greet and listen until `--until`; print JSON."""
    parser = argparse.ArgumentParser(prog='discovery.py peer')
    parser.add_argument('--index', type=int, required=True)
    parser.add_argument('--delay', type=float, required=True)
    parser.add_argument('--until', type=float, required=True, help='wall time to stop at')
    args = parser.parse_args(argv)
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    time.sleep(args.delay)
    rclpy.init()
    node = rclpy.create_node(f'discovery_peer_{args.index}')
    created = time.time()
    heard: dict[str, float] = {}

    def on_hello(msg: String) -> None:
        if msg.data != str(args.index) and msg.data not in heard:
            heard[msg.data] = time.time()

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(String, TOPIC, on_hello, qos)
    publisher = node.create_publisher(String, TOPIC, qos)
    hello = String(data=str(args.index))
    node.create_timer(PUBLISH_PERIOD_S, lambda: publisher.publish(hello))
    while time.time() < args.until:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
    print(json.dumps({'index': args.index, 'created': created, 'heard': heard}), flush=True)
    return 0


# The measuring process.

def discovery_figures(reports: list[list[dict[str, Any]]], peers: int) -> dict[str, Any]:
    """Pair and whole-graph discovery times of one or more runs' peer reports.

    `reports`: per run, the list of its peers' JSON (index, created, heard); a peer missing
    from a run (it crashed) counts as undiscovered by every other.
    """
    import numpy as np
    pairs: list[float] = []
    whole: list[float] = []
    undiscovered = 0
    for run in reports:
        created = {str(report['index']): report['created'] for report in run}
        for report in run:
            own = str(report['index'])
            times = []
            for other in (str(index) for index in range(peers) if str(index) != own):
                if other not in report['heard'] or other not in created:
                    undiscovered += 1
                    continue
                times.append(report['heard'][other] - max(report['created'], created[other]))
            pairs.extend(times)
            if len(times) == peers - 1:
                whole.append(max(times))
        undiscovered += (peers - len(run)) * (peers - 1)
    result: dict[str, Any] = {'pairs': len(pairs) + undiscovered,
                              'undiscovered_pairs': undiscovered}
    if pairs:
        values = np.array(pairs)
        result.update({'pair_p50_s': round(float(np.percentile(values, 50)), 3),
                       'pair_p90_s': round(float(np.percentile(values, 90)), 3),
                       'pair_max_s': round(float(values.max()), 3)})
    if whole:
        result.update({'whole_graph_median_s': round(float(np.median(whole)), 3),
                       'whole_graph_max_s': round(float(max(whole)), 3)})
    return result


def run_once(config: str, profile: str, peers: int, stagger: float, seconds: float,
             discovery_range: str, work: pathlib.Path) -> tuple[list[dict[str, Any]], float]:
    """Start the peers with one transport configuration; return their reports and the load."""
    load = round(os.getloadavg()[0], 2)
    domain, lock = reserve_domain_id()
    env = transport_env(config, profile)
    env.update({'ROS_DOMAIN_ID': str(domain), 'ROS_AUTOMATIC_DISCOVERY_RANGE': discovery_range,
                'ROS_LOG_DIR': str(work / 'ros_log')})
    until = time.time() + IMPORT_ALLOWANCE_S + stagger * (peers - 1) + seconds
    processes = [subprocess.Popen(
        [sys.executable, __file__, 'peer', '--index', str(index), '--delay',
         str(stagger * index), '--until', repr(until)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for index in range(peers)]
    reports = []
    try:
        for index, process in enumerate(processes):
            try:
                output, _ = process.communicate(timeout=max(until - time.time(), 0.0) + 30.0)
            except subprocess.TimeoutExpired:  # a hung peer counts as undiscovered
                output = ''
            report = last_json(output)
            if report:
                reports.append(report)
            else:
                print(f'  peer {index} gave no report (exit {process.returncode}):\n'
                      f'{output[-2000:]}', flush=True)
    finally:
        for process in processes:
            stop_process(process)
        lock.close()
    return reports, load


def describe(label: str, figures: dict[str, Any]) -> str:
    """One readable line of a configuration's figures."""
    if 'pair_p50_s' not in figures:
        return f'{label}: no pair discovered of {figures["pairs"]}'
    text = (f'{label}: pairs p50 {figures["pair_p50_s"]:.2f} s, p90 {figures["pair_p90_s"]:.2f}'
            f' s, max {figures["pair_max_s"]:.2f} s')
    if 'whole_graph_max_s' in figures:
        text += (f'; whole graph median {figures["whole_graph_median_s"]:.2f} s, max '
                 f'{figures["whole_graph_max_s"]:.2f} s')
    return text + f'; {figures["undiscovered_pairs"]} of {figures["pairs"]} pairs undiscovered'


def main(argv: Optional[list[str]] = None) -> int:
    """Measure every configuration `--repeats` times; print the figures."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['peer']:
        return peer_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='4 peers, one run each')
    parser.add_argument('--peers', type=int, default=None, help='processes per run (8)')
    parser.add_argument('--repeats', type=int, default=None, help='runs per configuration (3)')
    parser.add_argument('--stagger', type=float, default=0.5,
                        help='seconds between two peers creating their nodes')
    parser.add_argument('--seconds', type=float, default=8.0,
                        help='seconds every peer listens after the last one started')
    add_transport_arguments(parser, 'peers')
    args = parser.parse_args(argv)
    peers = args.peers or (4 if args.quick else 8)
    repeats = args.repeats or (1 if args.quick else 3)
    if peers < 2 or repeats < 1 or args.stagger < 0 or args.seconds <= 0:
        parser.error('--peers needs >= 2, --repeats >= 1, --stagger >= 0, --seconds > 0')
    configs, profile = transport_choices(parser, args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the children on the way out
    work = pathlib.Path(tempfile.mkdtemp(prefix='rig_discovery_'))
    print(f'discovery: {peers} peers {args.stagger:g} s apart, {repeats} run(s) per '
          f'configuration, profile {profile}, {args.discovery_range}, logs in {work}',
          flush=True)
    result: dict[str, Any] = {'peers': peers, 'repeats': repeats, 'stagger_s': args.stagger,
                              'cpus': os.cpu_count(), 'profile': pathlib.Path(profile).name,
                              'discovery_range': args.discovery_range}
    runs: dict[str, list[list[dict[str, Any]]]] = {config: [] for config in configs}
    loads = []
    for repeat in range(repeats):
        for config in configs:
            reports, load = run_once(config, profile, peers, args.stagger, args.seconds,
                                     args.discovery_range, work)
            runs[config].append(reports)
            loads.append(load)
            print(describe(f'run {repeat + 1}/{repeats} {config}',
                           discovery_figures([reports], peers)) + f' (load {load})', flush=True)
    for config in configs:
        figures = discovery_figures(runs[config], peers)
        print(describe(f'{config} (all runs)', figures), flush=True)
        result.update({PREFIXES[config] + key: value for key, value in figures.items()})
    if 'whole_graph_max_s' in result and 'defaults_whole_graph_max_s' in result:
        result['defaults_over_profile_whole_graph_max'] = round(
            result['defaults_whole_graph_max_s'] / max(result['whole_graph_max_s'], 1e-3), 2)
    result['load_average_1m_max'] = max(loads)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
