"""`run_node`: the one way every rig_ros node process starts, spins and stops.

SIGINT and SIGTERM both stop the spin loop (within `poll_s`); the node's optional
`on_shutdown()` then runs while the context is still valid (a policy sends a zero velocity),
the node is destroyed and rclpy shut down; the process exits 0 without a traceback. A
`ParameterError` at construction (already logged by the node) exits 2.
"""

import signal
import sys
import threading
from typing import Callable, Optional, Sequence

import rclpy
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from rig_ros.nodes.params import ParameterError

EXIT_BAD_PARAMETERS = 2


def run_node(make_node: Callable[[], Node], args: Optional[Sequence[str]] = None, *,
             make_executor: Callable[[], Executor] = SingleThreadedExecutor,
             poll_s: float = 0.1) -> int:
    """Create the node, spin it until SIGINT/SIGTERM or rclpy shutdown, and clean up."""
    stop = threading.Event()

    def _stop_handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop_handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=list(args) if args is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO)
    node = None
    executor = None
    try:
        try:
            node = make_node()
        except ParameterError:
            return EXIT_BAD_PARAMETERS
        executor = make_executor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=poll_s)
        on_shutdown = getattr(node, 'on_shutdown', None)
        if on_shutdown is not None and rclpy.ok():
            on_shutdown()
        return 0
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
