"""`BackgroundNode`: an rclpy node in its own context, spun on a daemon thread.

For code that is not itself a node process but joins the graph: a session's operator, the
tests' harness, benchmarks' probes. Callbacks run on the spin thread; the owner calls
`close()` (idempotent), which shuts the context down and joins the thread.
"""

import threading
from typing import Optional

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

SPIN_TIMEOUT_S = 0.05


class BackgroundNode:
    """A node named `name` in a fresh context (ROS_DOMAIN_ID from the environment or given)."""

    def __init__(self, name: str, domain_id: Optional[int] = None,
                 thread_name: str = 'background node') -> None:
        self.context = Context()
        if domain_id is None:
            rclpy.init(context=self.context)
        else:
            rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._closed = False
        self._thread = threading.Thread(target=self._spin, name=thread_name, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - a shutdown race ends the loop
                if not self.context.ok():
                    break
                raise

    def close(self) -> None:
        """Stop spinning, shut the context down and destroy the node."""
        if self._closed:
            return
        self._closed = True
        self.context.try_shutdown()
        self._thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
