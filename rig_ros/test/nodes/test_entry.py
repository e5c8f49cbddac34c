"""edge.entry: the executor choice, and a clean stop on SIGINT under either executor."""

import os
import signal
from typing import Optional

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.experimental import EventsExecutor
from rclpy.node import Node

from rig_ros.edge.entry import (
    EXECUTOR_ENVIRONMENT, executor_factory, executor_name, run_nodes)


def test_executor_named_by_the_node_unless_the_environment_says(monkeypatch):
    monkeypatch.delenv(EXECUTOR_ENVIRONMENT, raising=False)
    assert executor_factory() is SingleThreadedExecutor
    assert executor_factory('events') is EventsExecutor
    monkeypatch.setenv(EXECUTOR_ENVIRONMENT, 'single')
    assert executor_factory('events') is SingleThreadedExecutor
    assert executor_name('events') == 'single'  # what the latency bench reports
    monkeypatch.setenv(EXECUTOR_ENVIRONMENT, 'fast')
    with pytest.raises(ValueError, match='single, events'):
        executor_factory()


class SelfStopping(Node):
    """Sends its own process SIGINT from a timer; notes whether rclpy was up at shutdown."""

    def __init__(self) -> None:
        super().__init__('self_stopping')
        self.ticks = 0
        self.ok_at_shutdown: Optional[bool] = None
        self.create_timer(0.02, self.tick)

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks == 3:
            os.kill(os.getpid(), signal.SIGINT)

    def on_shutdown(self) -> None:
        self.ok_at_shutdown = rclpy.ok()


@pytest.mark.parametrize('executor', ['single', 'events'])
def test_sigint_runs_on_shutdown_and_restores_handlers(ros_domain_id, monkeypatch, executor):
    monkeypatch.delenv(EXECUTOR_ENVIRONMENT, raising=False)
    handler = signal.getsignal(signal.SIGINT)
    nodes: list[SelfStopping] = []

    def make_nodes() -> list[Node]:
        nodes.append(SelfStopping())
        return list(nodes)
    code = run_nodes(make_nodes, [], make_executor=executor_factory(executor), poll_s=0.05,
                     exit_process=False)
    assert code == 0
    assert nodes[0].ticks >= 3  # the timer ran under this executor
    # The EventsExecutor's own handler would have shut rclpy down before on_shutdown.
    assert nodes[0].ok_at_shutdown is True
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.parametrize('module, runner', [
    ('camera_pipeline', 'run_node'), ('vae_encoder', 'run_node'), ('policy', 'run_node'),
    ('mujoco_sim', 'run_node'), ('robot_chain', 'run_nodes'), ('goal_scheduler', 'run_node'),
    ('learner', 'run_node')])
def test_robot_chain_nodes_run_on_the_events_executor(monkeypatch, module, runner):
    """The frame path's nodes default to the EventsExecutor; the others to the single one."""
    import importlib
    node_module = importlib.import_module(f'rig_ros.nodes.{module}')
    chosen = {}

    def fake_run(make, args=None, *, make_executor=None, **kwargs):
        chosen['executor'] = make_executor
        return 0
    monkeypatch.setattr(node_module, runner, fake_run)
    monkeypatch.delenv(EXECUTOR_ENVIRONMENT, raising=False)
    assert node_module.main([]) == 0
    frame_path = module in ('camera_pipeline', 'vae_encoder', 'policy', 'mujoco_sim',
                            'robot_chain')
    expected = EventsExecutor if frame_path else SingleThreadedExecutor
    assert (chosen['executor'] or executor_factory()) is expected
    monkeypatch.setenv(EXECUTOR_ENVIRONMENT, 'single')
    assert node_module.main([]) == 0
    assert (chosen['executor'] or executor_factory()) is SingleThreadedExecutor
