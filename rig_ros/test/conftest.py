"""Shared test settings: offscreen rendering, ROS logs in the build tree, small thread pools."""

import os
import pathlib

_ROOT = pathlib.Path(__file__).resolve().parents[2]
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('PYOPENGL_PLATFORM', 'egl')
os.environ.setdefault('ROS_LOG_DIR', str(_ROOT / 'build' / 'ros_log'))

try:
    import torch
    # Two cores are shared by the tests and the processes they start.
    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a pinned requirement
    pass


def pytest_collection_modifyitems(config, items):
    """Give multi-process DDS tests up to two reruns (reported as such), never unit tests.

    They assert on timing (staleness within 0.3 s, discovery, lockstep progress) between
    processes sharing two cores with whatever else runs; a rerun keeps every assertion.
    """
    import pytest
    for item in items:
        parts = pathlib.Path(str(item.fspath)).parts
        if 'nodes' in parts or 'graph' in parts:
            item.add_marker(pytest.mark.flaky(reruns=2, reruns_delay=1))
