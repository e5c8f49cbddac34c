"""`run_node`: the one way every rig_ros node process starts, spins and stops.

SIGINT and SIGTERM both stop the spin loop (within `poll_s`); the node's optional
`on_shutdown()` then runs while the context is still valid (a policy sends a zero velocity),
the node is destroyed and rclpy shut down; the process exits 0 without a traceback, at once:
Python's own teardown is skipped (`exit_process`). A `ParameterError` at construction (already
logged by the node) exits 2 (`graph.EXIT_BAD_PARAMETERS`: the runner and the launch files do
not restart such a node). `run_nodes` does the same for several nodes on one executor (a
composed process, `robot_chain`). Freed memory of large messages is kept for reuse
(`keep_freed_memory`).

Executors (`executor_factory`): 'single' (rclpy's SingleThreadedExecutor) or 'events'
(rclpy's experimental EventsExecutor: no wait set rebuilt on every wake-up). The robot chain's
nodes (mujoco_sim, camera_pipeline, vae_encoder, policy and `robot_chain`, whose members run
together on one executor) use `FRAME_PATH_EXECUTOR`, 'events': on the idle 2-core machine it
took the apart chain's frame -> command p99 from 14.3 to 7.3 ms (docs/results.md, Graph
latency); the other nodes keep 'single'. The environment variable RIG_ROS_EXECUTOR ('single'
or 'events') overrides every node's choice. Under 'events' a subscription callback that takes
the MessageInfo must be wrapped (`rig_ros.edge.sequences.with_message_info`). SIGINT/SIGTERM
stop either executor's spin the same way (our handlers stay in place under rclpy 9.1's
EventsExecutor, tested).
"""

import contextlib
import ctypes
import os
import signal
import sys
import threading
from typing import Callable, List, Optional, Sequence

import rclpy
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from rig_ros.edge.params import ParameterError
from rig_ros.graph import EXIT_BAD_PARAMETERS

# glibc mallopt parameters and values: blocks under 16 MiB (a 1920x1080 rgb8 frame is 6.2 MB)
# come from the heap, and up to 32 MiB of free heap stays mapped.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 16 << 20
TRIM_THRESHOLD_BYTES = 32 << 20

EXECUTOR_ENVIRONMENT = 'RIG_ROS_EXECUTOR'
FRAME_PATH_EXECUTOR = 'events'  # the robot chain's nodes: one frame's hops at a time
EXECUTORS: dict[str, Callable[[], Executor]] = {
    'single': SingleThreadedExecutor,
    'events': EventsExecutor,
}


def executor_name(default: str = 'single') -> str:
    """Return the executor named by RIG_ROS_EXECUTOR, else `default`.

    Raises ValueError naming the choices for an unknown name.
    """
    name = os.environ.get(EXECUTOR_ENVIRONMENT, '').strip() or default
    if name not in EXECUTORS:
        raise ValueError(f'unknown executor {name!r} (from {EXECUTOR_ENVIRONMENT} or the '
                         f'node); choices: {", ".join(EXECUTORS)}')
    return name


def executor_factory(default: str = 'single') -> Callable[[], Executor]:
    """Return the executor class `executor_name(default)` names."""
    return EXECUTORS[executor_name(default)]


def run_node(make_node: Callable[[], Node], args: Optional[Sequence[str]] = None, *,
             make_executor: Optional[Callable[[], Executor]] = None,
             poll_s: float = 0.1, exit_process: bool = True) -> int:
    """Create the node, spin it until SIGINT/SIGTERM or rclpy shutdown, and clean up.

    make_executor: None is `executor_factory()` (RIG_ROS_EXECUTOR, else 'single').
    """
    return run_nodes(lambda: [make_node()], args, make_executor=make_executor, poll_s=poll_s,
                     exit_process=exit_process)


def run_nodes(make_nodes: Callable[[], List[Node]], args: Optional[Sequence[str]] = None, *,
              make_executor: Optional[Callable[[], Executor]] = None,
              poll_s: float = 0.1, exit_process: bool = True) -> int:
    """Create nodes, spin them on one executor until SIGINT/SIGTERM, and clean up.

    `make_nodes` returns the nodes in start order; they shut down in reverse order. Nodes it
    created before a `ParameterError` must be destroyed by it (the process then exits 2).
    exit_process: end the process with the exit code once everything is closed (a node's
    `main`); false returns it.
    """
    code = _spin_nodes(make_nodes, args, make_executor or executor_factory(), poll_s)
    if exit_process:
        # Interpreter teardown (torch, MuJoCo, DDS libraries) took 0.5-3 s per node with a
        # graph's six nodes stopping at once on two cores (measured): past launch's 5 s SIGINT
        # grace under load. Files, logs (rclpy's shut down) and DDS are closed by now.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a reader gone, a stream closed
                stream.flush()
        os._exit(code)
    return code


def keep_freed_memory() -> bool:
    """Let glibc keep the memory of freed camera-sized messages for the next ones.

    By default every block over 128 KB is mapped fresh and unmapped when freed, so each frame
    taken (the message, its bytes, the array: three 900 KB blocks for 640x480 rgb8) faulted its
    pages in anew: deserializing one took 1.6 ms median, 21 ms p90 on a loaded machine, 0.1 ms
    with the memory kept (measured). Returns false where the C library has no `mallopt`.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def _spin_nodes(make_nodes: Callable[[], List[Node]], args: Optional[Sequence[str]],
                make_executor: Callable[[], Executor], poll_s: float) -> int:
    keep_freed_memory()
    stop = threading.Event()

    def _stop_handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop_handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=list(args) if args is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO)
    nodes: List[Node] = []
    executor = None
    try:
        try:
            nodes = list(make_nodes())
        except ParameterError:
            return EXIT_BAD_PARAMETERS
        executor = make_executor()
        for node in nodes:
            executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=poll_s)
        for node in reversed(nodes):
            on_shutdown = getattr(node, 'on_shutdown', None)
            if on_shutdown is not None and rclpy.ok():
                on_shutdown()
        return 0
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
