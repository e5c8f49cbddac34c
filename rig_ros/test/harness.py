"""The node and graph tests' harness: isolated ROS domains, an in-test node, node processes.

Imported by name (`rig_ros/test` is on pytest's `pythonpath`); the fixtures built on it
(`ros_domain_id`, `ros`, `start_node`, `wait_for`) are in `rig_ros/test/conftest.py`.
- `reserve_domain_id` / `isolate_domain`: a ROS_DOMAIN_ID (1..100) held with a lock file, so
  parallel tests and other test sessions on the machine never share one; `isolate_domain`
  also exports it (for rclpy.init and child processes) with ROS_AUTOMATIC_DISCOVERY_RANGE=
  LOCALHOST.
- `RosHarness`: an own rclpy context, a node, an executor spinning in a thread.
- `NodeStarter` / `NodeUnderTest`: rig_ros nodes started as processes with the runner's
  command line, each with its output and a bounded stop.
- `wait_for(predicate, timeout=..., interval=...) -> bool`, always bounded.
- Kill drills on a practice graph started node by node: `start_practice_nodes`, `kill`,
  `outputs`, `Stamped` (messages with arrival times), `latest_status` (the learner's status
  JSON), `saved_rows` (what a run directory holds of the learner's transitions).
"""

import json
import os
import pathlib
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pytest
from rclpy.qos import QoSProfile

from rig_ros import graph
from rig_ros.core.learner import EPISODES_DIR, REPLAY_FILE
from rig_ros.edge.background import BackgroundNode
from rig_ros.graph import NodeSpec
from rig_ros.run import runner
from rig_ros.run.domains import reserve_domain_id

DISCOVERY_TIMEOUT_S = 20.0  # wait_for_service took up to 3 s on a busy 2-core machine
STOP_TIMEOUT_S = 10.0


def wait_for(predicate: Callable[[], Any], timeout: float = DISCOVERY_TIMEOUT_S,
             interval: float = 0.02) -> bool:
    """Poll `predicate` until it is truthy (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def isolate_domain(monkeypatch: pytest.MonkeyPatch) -> tuple[int, Any]:
    """Reserve a domain id and export it with `monkeypatch`; return it and its lock handle.

    Close the handle after `monkeypatch.undo()` to free the id.
    """
    domain, handle = reserve_domain_id()
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return domain, handle


class MessageCollector:
    """Messages received on one subscription, thread-safe."""

    def __init__(self) -> None:
        self._messages: list = []
        self._lock = threading.Lock()

    def callback(self, msg: Any) -> None:
        """Store a message (subscription callback)."""
        with self._lock:
            self._messages.append(msg)

    @property
    def messages(self) -> list:
        """A copy of the messages so far."""
        with self._lock:
            return list(self._messages)

    def matching(self, predicate: Callable[[Any], bool]) -> list:
        """Return the messages for which `predicate` holds."""
        return [msg for msg in self.messages if predicate(msg)]


class RosHarness:
    """An rclpy context and node of the test, spun by an executor in a thread."""

    def __init__(self, domain_id: int) -> None:
        self.domain_id = domain_id
        self._background = BackgroundNode(f'test_harness_{os.getpid()}', domain_id,
                                          thread_name='test executor')
        self.context = self._background.context
        self.node = self._background.node
        self.executor = self._background.executor

    def collect(self, msg_type: type, topic: str, qos: QoSProfile) -> MessageCollector:
        """Subscribe to `topic` and collect what arrives."""
        collector = MessageCollector()
        self.node.create_subscription(msg_type, topic, collector.callback, qos)
        return collector

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile) -> Any:
        """Create a publisher on the test node."""
        return self.node.create_publisher(msg_type, topic, qos)

    def wait_for_subscribers(self, publisher: Any, count: int = 1,
                             timeout: float = DISCOVERY_TIMEOUT_S) -> bool:
        """Wait until `publisher` has matched `count` subscriptions."""
        return wait_for(lambda: publisher.get_subscription_count() >= count, timeout)

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self._background.close()


class NodeUnderTest:
    """A node process started by `NodeStarter`, with its output and a bounded stop."""

    def __init__(self, spec: NodeSpec, params_dir: str) -> None:
        self.spec = spec
        self.command = runner.node_command(spec, params_dir)
        self.process = runner.NodeProcess(spec.fully_qualified_name.lstrip('/'),
                                          self.command, dict(os.environ), None,
                                          threading.Lock(), keep_lines=True)

    @property
    def output(self) -> str:
        """Everything the node printed so far (stdout and stderr)."""
        return self.process.text()

    @property
    def returncode(self) -> Optional[int]:
        """Exit code, None while running."""
        return self.process.poll()

    def wait_exit(self, timeout: float = STOP_TIMEOUT_S) -> Optional[int]:
        """Wait up to `timeout` for the node to exit on its own; return its exit code."""
        try:
            code = self.process.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.process.join_output()
        return code

    def stop(self, sig: int = signal.SIGINT, timeout: float = STOP_TIMEOUT_S) -> Optional[int]:
        """Send `sig`, wait up to `timeout`, then SIGKILL; return the exit code after `sig`.

        None means the node did not exit in time (it was killed).
        """
        if self.process.poll() is None:
            self.process.signal_group(sig)
        code = self.wait_exit(timeout)
        if code is None:
            self.process.signal_group(signal.SIGKILL)
            self.wait_exit(5.0)
        return code


class NodeStarter:
    """Starts rig_ros nodes as processes (in the current environment); `close` stops them."""

    def __init__(self) -> None:
        self.started: list[NodeUnderTest] = []
        self._params_dir = tempfile.TemporaryDirectory(prefix='rig_node_test_')

    def start(self, executable: str, *, name: Optional[str] = None, namespace: str = '/',
              parameters: Optional[dict] = None, param_files: Sequence[str] = (),
              remappings: Sequence[tuple[str, str]] = ()) -> NodeUnderTest:
        """Start `executable` as the node `namespace/name` with the runner's command line."""
        spec = NodeSpec(name or executable, executable, namespace, parameters or {},
                        tuple(param_files), tuple(remappings))
        node = NodeUnderTest(spec, self._params_dir.name)
        self.started.append(node)
        return node

    def close(self) -> None:
        """Stop every node still running (SIGINT, then SIGKILL); remove the parameter files."""
        for node in self.started:
            node.stop(timeout=STOP_TIMEOUT_S)
        self._params_dir.cleanup()


class Stamped:
    """Messages of one subscription with their arrival times (monotonic)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Any]] = []
        self._lock = threading.Lock()

    def callback(self, msg: Any) -> None:
        with self._lock:
            self.items.append((time.monotonic(), msg))

    def since(self, start: float) -> list[tuple[float, Any]]:
        with self._lock:
            return [(t, m) for t, m in self.items if t >= start]


def start_practice_nodes(start_node: Callable, run_dir: pathlib.Path, lockstep: bool,
                         overrides: dict[str, dict]) -> dict:
    """Start the reacher practice graph node by node (`start_node`: the fixture).

    `overrides`: parameters per executable over the graph's. Returns, per executable, a list
    [spec, the running node, a callable that starts it again].
    """
    nodes = {}
    for spec in graph.practice_graph('reacher', lockstep=lockstep, run_dir=str(run_dir)):
        nodes[spec.executable] = (spec, lambda spec=spec: start_node(
            spec.executable, name=spec.name, namespace=spec.namespace,
            parameters={**spec.parameters, **overrides.get(spec.executable, {})},
            param_files=spec.param_files, remappings=spec.remappings))
    return {name: [spec, make(), make] for name, (spec, make) in nodes.items()}


def latest_status(collector: Any) -> dict:
    """Return the newest learner status (JSON on rig/learner_status), {} before the first."""
    messages = collector.messages
    return json.loads(messages[-1].data) if messages else {}


def kill(node: NodeUnderTest) -> float:
    """SIGKILL a node's process group; return when it was dead (monotonic)."""
    node.process.signal_group(signal.SIGKILL)
    node.wait_exit(10.0)
    return time.monotonic()


def outputs(nodes: dict) -> str:
    """Return the tail of every node's output (for assertion messages)."""
    return '\n'.join(entry[1].output[-1500:] for entry in nodes.values())


def saved_rows(run_dir: pathlib.Path) -> set[bytes]:
    """Observation rows in the run directory: the replay file and the newer episode files."""
    rows: set[bytes] = set()
    sequence = 0
    if (run_dir / REPLAY_FILE).is_file():
        with np.load(run_dir / REPLAY_FILE) as data:
            frames = min(int(data['frames']), len(data['obs']))
            rows |= {row.tobytes() for row in data['obs'][:frames].astype(np.float32)}
            sequence = int(data['learner_episode_sequence'])
    for file in sorted((run_dir / EPISODES_DIR).glob('*.npz')):
        if int(file.stem) > sequence:
            with np.load(file) as data:
                rows |= {row.tobytes() for row in data['observation'].astype(np.float32)}
    return rows
