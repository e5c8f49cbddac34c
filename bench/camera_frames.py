"""Camera-sized frames into camera_pipeline over DDS: how many arrive, how old, the longest gap.

Three processes per run, all started with the run's transport settings:
- a camera-like publisher sends rgb8 sensor_msgs/Image frames at 30 Hz on `camera/image_raw`
  (the frame is serialized once and only its stamp changes, so the sender costs about what a
  C++ camera driver does, not what building a Python message does);
- a real `camera_pipeline` node (the runner's command line) preprocesses them to 84x84;
- a receiver subscribes the pipeline's `rig/image` and notes when each output arrives.
A frame counts as delivered when an output with its stamp reaches the receiver, so the figures
are what reaches the VAE: the raw-frame hop, the pipeline's own pace (it works on the newest
frame and skips the others) and the small 84x84 hop. Per run, over the frames sent after a 2 s
warm-up: the fraction delivered, the frame age at the receiver (arrival minus the frame's
stamp; one clock) p50/p99, and the largest gap (the longest stretch of camera time without a
delivered frame, edges of the window included, or the longest pause between arrivals,
whichever is larger; every frame delivered on time gives 33 ms).

Runs, at 640x480, 1280x720 and 1920x1080: `best_effort` (the sensor-data QoS camera drivers
publish with and the pipeline subscribes with), `reliable` (the publisher and the pipeline's
subscription reliable, keep last 1, as with a driver whose images are reliable), and
`busy_best_effort` (best effort with both cores kept busy by two spinning processes). Each run
is made with the package's Fast DDS profile (`config/fastdds_rig.xml`, or `--profile`) and
with Fast DDS's default transports (`defaults_` keys), one after the other, so the difference
is measured under the same conditions (`--configs large_data` adds
FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA, `large_data_` keys). `--direct` measures the transport
alone: no pipeline, the receiver subscribes the camera frames. `--discovery-range SUBNET`
runs as machines of a fleet do (default LOCALHOST, as the tests and `make demo`; rmw_fastrtps
then adds transports of its own). The machine is shared: the 1-minute load average at the
start of every run is recorded.

Readable lines first; the last line is JSON: per mode and size `<mode>_<size>_delivered`
(fraction), `_max_gap_s`, `_age_p50_s`, `_age_p99_s`, `_sent`, the same with `defaults_` in
front, and the load averages. Targets (with the profile): at 640x480 and 1280x720 >= 99 %
delivered and largest gap <= 0.1 s on an idle machine, >= 95 % delivered with both cores busy.
Exit 0 whatever the figures.
"""

import argparse
import json
import os
import pathlib
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Optional

from rig_ros.run.domains import reserve_domain_id

SIZES = ('640x480', '1280x720', '1920x1080')
MODES = ('best_effort', 'reliable', 'busy_best_effort')
BUSY_LOOP = ('import signal, sys\n'
             'signal.signal(signal.SIGINT, lambda *_: sys.exit(0))\n'
             'while True:\n    pass\n')
CONFIGS = ('profile', 'defaults')  # also 'large_data': FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
PREFIXES = {'profile': '', 'defaults': 'defaults_', 'large_data': 'large_data_'}
RATE_HZ = 30.0
WARMUP_S = 2.0
NAMESPACE = '/bench_camera'
CAMERA_TOPIC = f'{NAMESPACE}/camera/image_raw'
IMAGE_TOPIC = f'{NAMESPACE}/rig/image'
START_TIMEOUT_S = 60.0
TARGET_DELIVERED = 0.99
TARGET_BUSY_DELIVERED = 0.95
TARGET_MAX_GAP_S = 0.1
# The CDR encapsulation header (4 bytes) comes first; then Header.stamp (int32 sec, uint32 ns).
_STAMP_OFFSET = 4
_TRANSPORT_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTDDS_BUILTIN_TRANSPORTS',
                        'RMW_FASTRTPS_USE_QOS_FROM_XML')
_SUMMARY = re.compile(r'camera frames: (\d+) processed, (\d+) skipped')


def frame_qos(reliable: bool) -> Any:
    """Keep last 1, best effort (SENSOR_QOS) or reliable."""
    from rclpy.qos import ReliabilityPolicy

    from rig_ros.interfaces.qos import SENSOR_QOS
    qos = SENSOR_QOS
    if reliable:
        from copy import copy
        qos = copy(SENSOR_QOS)
        qos.reliability = ReliabilityPolicy.RELIABLE
    return qos


def parse_size(size: str) -> tuple[int, int]:
    """'640x480' -> (width, height)."""
    width, height = (int(value) for value in size.split('x'))
    return width, height


def serialized_frame(width: int, height: int) -> bytearray:
    """Return one serialized rgb8 frame (a colour gradient) whose stamp can be patched."""
    import numpy as np
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from rig_ros.edge.image_msgs import array_to_image
    rows = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    cols = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    frame = np.stack([np.broadcast_to(rows, (height, width)),
                      np.broadcast_to(cols, (height, width)),
                      np.full((height, width), 128, np.uint8)], axis=2)
    msg = array_to_image(np.ascontiguousarray(frame), 'rgb8')
    msg.header.frame_id = 'camera'
    data = bytearray(serialize_message(msg))
    set_stamp(data, 1_234_567_890_123_456_789)
    check = deserialize_message(bytes(data), Image)
    if (check.header.stamp.sec, check.header.stamp.nanosec) != (1_234_567_890, 123_456_789):
        raise RuntimeError('unexpected serialized Image layout')
    return data


def set_stamp(data: bytearray, stamp_ns: int) -> None:
    """Write `stamp_ns` into a serialized Image's header."""
    struct.pack_into('<iI', data, _STAMP_OFFSET, stamp_ns // 1_000_000_000,
                     stamp_ns % 1_000_000_000)


def stamp_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> nanoseconds."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


# The camera-like publisher (a process of its own: `camera_frames.py publish ...`).

def publish_main(argv: list[str]) -> int:
    """Publish frames at `--rate` once the pipeline subscribes; print the stamps as JSON."""
    parser = argparse.ArgumentParser(prog='camera_frames.py publish')
    parser.add_argument('--size', required=True)
    parser.add_argument('--seconds', type=float, required=True)
    parser.add_argument('--warmup', type=float, default=WARMUP_S)
    parser.add_argument('--rate', type=float, default=RATE_HZ)
    parser.add_argument('--reliable', action='store_true')
    args = parser.parse_args(argv)
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    data = serialized_frame(*parse_size(args.size))
    rclpy.init()
    node = Node('camera_frames_publisher')
    publisher = node.create_publisher(Image, CAMERA_TOPIC, frame_qos(args.reliable))
    result: dict[str, Any] = {'stamps': [], 'late': 0, 'publish_max_s': 0.0}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while publisher.get_subscription_count() < 1:
            if time.monotonic() > deadline:
                result['error'] = 'no subscriber'
                print(json.dumps(result), flush=True)
                return 3
            time.sleep(0.05)
        period = 1.0 / args.rate
        warmup = round(args.warmup * args.rate)
        total = warmup + round(args.seconds * args.rate)
        start = time.monotonic() + 0.1
        for index in range(total):
            delay = start + index * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -period:  # a camera does not catch up in a burst: skip the frame
                result['late'] += index >= warmup
                continue
            now = time.time_ns()
            set_stamp(data, now)
            publisher.publish(bytes(data))
            result['publish_max_s'] = max(result['publish_max_s'],
                                          (time.time_ns() - now) / 1e9)
            if index >= warmup:
                result['stamps'].append(now)
        time.sleep(0.5)  # let the last frames out before the participant goes
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps(result), flush=True)
    return 0


# The receiver (a process of its own: `camera_frames.py receive [--direct [--reliable]]`).

def receive_main(argv: list[str]) -> int:
    """Note each frame's stamp and arrival time until SIGINT/SIGTERM; print them as JSON.

    The pipeline's `rig/image`, or with `--direct` the camera frames themselves.
    """
    parser = argparse.ArgumentParser(prog='camera_frames.py receive')
    parser.add_argument('--direct', action='store_true')
    parser.add_argument('--reliable', action='store_true')
    args = parser.parse_args(argv)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = Node('camera_frames_receiver')
    arrivals: list[tuple[int, int]] = []

    def on_image(msg: Image) -> None:
        arrivals.append((stamp_ns(msg.header.stamp), time.time_ns()))

    topic = CAMERA_TOPIC if args.direct else IMAGE_TOPIC
    node.create_subscription(Image, topic, on_image, frame_qos(args.direct and args.reliable))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    ready = False
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)
            # The publisher waits for its subscriber; the pipeline's output must be matched.
            if not ready and (args.direct or node.count_publishers(topic) >= 1):
                ready = True
                print('ready', flush=True)
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps({'arrivals': arrivals}), flush=True)
    return 0


# The measuring process.

def transport_env(config: str, profile: str) -> dict[str, str]:
    """Return the environment of a run's processes: the profile, defaults or LARGE_DATA."""
    env = {key: value for key, value in os.environ.items() if key not in _TRANSPORT_VARIABLES}
    if config == 'profile':
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = profile
    elif config == 'large_data':
        env['FASTDDS_BUILTIN_TRANSPORTS'] = 'LARGE_DATA'
    env['PYTHONUNBUFFERED'] = '1'
    return env


def last_json(text: str) -> dict[str, Any]:
    """Return the last line of `text` that parses as a JSON object ({} if none)."""
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def figures(sent: list[int], arrivals: list[tuple[int, int]]) -> dict[str, Any]:
    """Delivered fraction, frame age p50/p99 and the largest gap of one run."""
    import numpy as np
    period_ns = round(1e9 / RATE_HZ)
    sent_set = set(sent)
    first_arrival: dict[int, int] = {}
    for stamp, arrival in arrivals:
        if stamp in sent_set and stamp not in first_arrival:
            first_arrival[stamp] = arrival
    result: dict[str, Any] = {'sent': len(sent), 'received': len(first_arrival),
                              'delivered': round(len(first_arrival) / max(len(sent), 1), 4)}
    if not sent:
        return result
    delivered = sorted(first_arrival)
    points = [sent[0] - period_ns] + delivered + [sent[-1] + period_ns]
    gap_ns = int(np.max(np.diff(points)))
    if len(delivered) > 1:
        arrival_times = np.sort(np.array([first_arrival[s] for s in delivered]))
        gap_ns = max(gap_ns, int(np.max(np.diff(arrival_times))))
    result['max_gap_s'] = round(gap_ns / 1e9, 3)
    if delivered:
        ages = np.array([first_arrival[s] - s for s in delivered]) / 1e9
        result.update({'age_p50_s': round(float(np.percentile(ages, 50)), 4),
                       'age_p99_s': round(float(np.percentile(ages, 99)), 4),
                       'age_max_s': round(float(np.max(ages)), 4)})
    return result


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGINT, then SIGKILL after `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_line(process: subprocess.Popen, text: str, timeout: float) -> bool:
    """Read `process`'s stdout until a line equal to `text` (True) or EOF/timeout (False)."""
    found = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, ''):
            if line.strip() == text:
                found.set()
                return
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return found.is_set()


def run_once(mode: str, size: str, config: str, seconds: float, profile: str,
             work: pathlib.Path, direct: bool = False) -> dict[str, Any]:
    """Start busy loops (busy mode), the pipeline, the receiver and the publisher; measure.

    `direct`: no pipeline, the receiver subscribes the camera frames.
    """
    from rig_ros.graph import NodeSpec
    from rig_ros.run import runner
    reliable = mode == 'reliable'
    env = transport_env(config, profile)
    parameters = {'size': 84}
    if reliable:
        parameters[f'qos_overrides.{CAMERA_TOPIC}.subscription.reliability'] = 'reliable'
    spec = NodeSpec('camera_pipeline', 'camera_pipeline', NAMESPACE, parameters, (), ())
    label = f'{config}_{mode}_{size}'
    load = os.getloadavg()[0]
    # SIGINT ends a busy loop quietly (no KeyboardInterrupt traceback in the bench's output).
    busy = [subprocess.Popen([sys.executable, '-c', BUSY_LOOP])
            for _ in range(2 if mode.startswith('busy') else 0)]
    me = pathlib.Path(__file__).resolve()
    processes: list[subprocess.Popen] = []
    result: dict[str, Any] = {'load_1m': round(load, 2)}
    try:
        if not direct:
            with open(work / f'{label}_pipeline.log', 'w') as log:
                processes.append(subprocess.Popen(
                    runner.node_command(spec, str(work)), env=env, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True))
        options = (['--direct'] + (['--reliable'] if reliable else [])) if direct else []
        receiver = subprocess.Popen([sys.executable, str(me), 'receive', *options], env=env,
                                    stdout=subprocess.PIPE, text=True, start_new_session=True)
        processes.append(receiver)
        if not wait_for_line(receiver, 'ready', START_TIMEOUT_S):
            result['error'] = 'the receiver never saw the pipeline'
            return result
        command = [sys.executable, str(me), 'publish', '--size', size, '--seconds', str(seconds)]
        publisher = subprocess.run(command + (['--reliable'] if reliable else []), env=env,
                                   stdout=subprocess.PIPE, text=True,
                                   timeout=START_TIMEOUT_S + seconds + 30)
        time.sleep(1.0)  # the last outputs
        receiver.send_signal(signal.SIGINT)
        output, _ = receiver.communicate(timeout=30)
        sent = last_json(publisher.stdout)
        received = last_json(output)
        result.update(figures(sent.get('stamps', []), received.get('arrivals', [])))
        result['late'] = sent.get('late', 0)
        result['publish_max_s'] = round(sent.get('publish_max_s', 0.0), 4)
        if 'error' in sent:
            result['error'] = sent['error']
    finally:
        for process in processes + busy:
            stop_process(process)
    log_file = work / f'{label}_pipeline.log'
    summary = _SUMMARY.findall(log_file.read_text()) if log_file.exists() else []
    if summary:
        result['pipeline_processed'], result['pipeline_skipped'] = map(int, summary[-1])
    return result


def describe(label: str, figures_: dict[str, Any]) -> str:
    """One readable line of a run's figures."""
    if 'delivered' not in figures_:
        return f'{label:34s} {figures_}'
    text = (f'{label:34s} delivered {figures_["received"]:4d}/{figures_["sent"]:4d} '
            f'({100 * figures_["delivered"]:5.1f} %), largest gap '
            f'{figures_.get("max_gap_s", float("nan")):6.3f} s')
    if 'age_p50_s' in figures_:
        text += (f', age p50 {1e3 * figures_["age_p50_s"]:6.1f} ms '
                 f'p99 {1e3 * figures_["age_p99_s"]:7.1f} ms')
    if figures_.get('late'):
        text += f', {figures_["late"]} frames not sent (publisher late)'
    if 'pipeline_processed' in figures_:
        text += (f', pipeline {figures_["pipeline_processed"]} processed '
                 f'{figures_["pipeline_skipped"]} skipped')
    return text + f' (load {figures_["load_1m"]})'


def default_profile() -> str:
    """Return the package's profile: the installed share's, else the source tree's."""
    from rig_ros.run.launch_description import fastdds_profile
    path = fastdds_profile()
    if path is None:
        raise FileNotFoundError('no config/fastdds_rig.xml installed or in the source tree')
    return path


def add_transport_arguments(parser: argparse.ArgumentParser, processes: str) -> None:
    """Add the transport flags of the DDS benches: --configs, --profile, --discovery-range."""
    parser.add_argument('--configs', default=','.join(CONFIGS),
                        help='comma-separated: profile (the Fast DDS profile), defaults (Fast '
                        'DDS defaults), large_data (FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA)')
    parser.add_argument('--profile', default=None,
                        help="Fast DDS XML profile file (default: the package's)")
    parser.add_argument('--discovery-range', default='LOCALHOST',
                        choices=('LOCALHOST', 'SUBNET'),
                        help=f'ROS_AUTOMATIC_DISCOVERY_RANGE of the {processes}')


def transport_choices(parser: argparse.ArgumentParser,
                      args: argparse.Namespace) -> tuple[list[str], str]:
    """Return the configurations to run and the profile file; exit 2 naming an unknown one."""
    configs = [c.strip() for c in args.configs.split(',') if c.strip()]
    unknown = [config for config in configs if config not in PREFIXES]
    if unknown or not configs:
        parser.error(f'--configs {args.configs!r}: choose among {", ".join(PREFIXES)}')
    if args.profile and not pathlib.Path(args.profile).is_file():
        parser.error(f'--profile {args.profile}: no such file')
    profile = str(pathlib.Path(args.profile).resolve()) if args.profile else default_profile()
    return configs, profile


def main(argv: Optional[list[str]] = None) -> int:
    """Measure every mode, size and transport configuration; print the figures."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['publish']:
        return publish_main(argv[1:])
    if argv[:1] == ['receive']:
        return receive_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='4 s per run instead of 15')
    parser.add_argument('--seconds', type=float, default=None, help='measured seconds per run')
    parser.add_argument('--sizes', default=','.join(SIZES), help='comma-separated WxH')
    parser.add_argument('--modes', default=','.join(MODES),
                        help=f'comma-separated, of {", ".join(MODES)}')
    parser.add_argument('--direct', action='store_true',
                        help='transport only: no camera_pipeline, the receiver subscribes the '
                        'camera frames')
    add_transport_arguments(parser, 'processes')
    args = parser.parse_args(argv)
    seconds = args.seconds or (4.0 if args.quick else 15.0)
    sizes = [s.strip() for s in args.sizes.split(',') if s.strip()]
    modes = [m.strip() for m in args.modes.split(',') if m.strip()]
    configs, profile = transport_choices(parser, args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the children on the way out
    domain, lock = reserve_domain_id()
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = args.discovery_range
    work = pathlib.Path(tempfile.mkdtemp(prefix='rig_camera_frames_'))
    os.environ.setdefault('ROS_LOG_DIR', str(work / 'ros_log'))
    print(f'camera_frames: domain {domain}, {seconds:g} s per run at {RATE_HZ:g} Hz after '
          f'{WARMUP_S:g} s warm-up, profile {profile}, '
          f'{"transport only" if args.direct else "through camera_pipeline"}, '
          f'{args.discovery_range}, logs in {work}', flush=True)
    result: dict[str, Any] = {'seconds_per_run': seconds, 'rate_hz': RATE_HZ,
                              'cpus': os.cpu_count(), 'profile': pathlib.Path(profile).name,
                              'direct': args.direct, 'discovery_range': args.discovery_range,
                              'load_average_1m_start': round(os.getloadavg()[0], 2)}
    loads = []
    try:
        for mode in modes:
            for size in sizes:
                for config in configs:
                    figures_ = run_once(mode, size, config, seconds, profile, work,
                                        args.direct)
                    prefix = PREFIXES[config] + f'{mode}_{size}'
                    print(describe(prefix, figures_), flush=True)
                    loads.append(figures_['load_1m'])
                    for key in ('delivered', 'max_gap_s', 'age_p50_s', 'age_p99_s', 'sent'):
                        if key in figures_:
                            result[f'{prefix}_{key}'] = figures_[key]
    finally:
        lock.close()
    result['load_average_1m_end'] = round(os.getloadavg()[0], 2)
    result['load_average_1m_max'] = max(loads, default=None)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
