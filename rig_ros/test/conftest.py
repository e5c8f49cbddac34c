"""Shared test settings and fixtures.

Settings: offscreen rendering, ROS logs in the build tree, small thread pools.
Fixtures (the machinery is in `harness.py` and `factories.py`, importable by name):
- `ros_domain_id`: a ROS_DOMAIN_ID of this test's own (locked, so parallel tests and other
  sessions never share it), exported with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST.
- `ros`: a `harness.RosHarness` on that domain (own context, a node, spun in a thread).
- `start_node`: start a rig_ros node as a process with the runner's command line; every process
  still running at teardown is stopped (SIGINT, then SIGKILL).
- `wait_for`: `wait_for(predicate, timeout=..., interval=...) -> bool`, always bounded.
- `vae_checkpoint`: an untrained VAE's checkpoint (`factories.untrained_vae()`), alone in its
  directory, written once per session: read it, never change it.
Reruns: tests marked `multiprocess` (several processes racing over DDS) get up to two reruns.
"""

import os
import pathlib
from typing import Callable, Iterator

from factories import save_vae, untrained_vae
import harness
import pytest
import torch

_ROOT = pathlib.Path(__file__).resolve().parents[2]
# Read when MuJoCo and rclpy start (neither harness nor factories imports MuJoCo).
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('PYOPENGL_PLATFORM', 'egl')
os.environ.setdefault('ROS_LOG_DIR', str(_ROOT / 'build' / 'ros_log'))
# Two cores are shared by the tests and the processes they start.
torch.set_num_threads(1)
RERUNS = 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give tests marked `multiprocess` up to two reruns (reported as such), no other test.

    They assert on timing (staleness within 0.3 s, discovery, lockstep progress) between
    processes sharing two cores with whatever else runs; a rerun keeps every assertion.
    """
    if not config.pluginmanager.hasplugin('rerunfailures'):  # -p no:rerunfailures
        return
    for item in items:
        if item.get_closest_marker('multiprocess'):
            item.add_marker(pytest.mark.flaky(reruns=RERUNS, reruns_delay=1))


@pytest.fixture
def ros_domain_id(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Reserve a ROS domain id for this test and export it."""
    domain, handle = harness.isolate_domain(monkeypatch)
    try:
        yield domain
    finally:
        handle.close()


@pytest.fixture
def ros(ros_domain_id: int) -> Iterator[harness.RosHarness]:
    """Give the test an rclpy node on its own domain, spun in a background thread."""
    test_node = harness.RosHarness(ros_domain_id)
    try:
        yield test_node
    finally:
        test_node.close()


@pytest.fixture
def start_node(ros_domain_id: int) -> Iterator[Callable[..., harness.NodeUnderTest]]:
    """Return `harness.NodeStarter.start`; the nodes are stopped at teardown."""
    starter = harness.NodeStarter()
    try:
        yield starter.start
    finally:
        starter.close()


@pytest.fixture(name='wait_for')
def wait_for_fixture() -> Callable[..., bool]:
    """Return `wait_for(predicate, timeout=..., interval=...) -> bool`."""
    return harness.wait_for


@pytest.fixture(scope='session')
def vae_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Return an untrained VAE's checkpoint (seed 0, 48x48 images, 4 latents); do not modify."""
    return save_vae(tmp_path_factory.mktemp('untrained_vae') / 'vae.safetensors',
                    untrained_vae())
