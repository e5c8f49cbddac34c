"""ament_flake8's rules over the whole repository (config in setup.cfg at the root)."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_flake8_is_clean():
    result = subprocess.run(
        [sys.executable, '-m', 'flake8', 'rig_ros', 'bench', 'scripts', '--no-show-source'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
