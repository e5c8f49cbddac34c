"""Reports: the learning-curve plot reads the keys it is told to."""

import pathlib

import pytest

from rig_ros import report

PUSHER_ROWS = [{'env_steps_total': 5000 + step, 'rig_success_rate': 0.1 * index,
                'rig_final_puck_distance_median': 0.1 - 0.01 * index,
                'rig_final_hand_distance_median': 0.05}
               for index, step in enumerate((0, 12500, 25000))]
PUSHER_AXES = report.CurveAxes(x_key='env_steps_total', x_label='environment steps',
                               distance_key='rig_final_puck_distance_median',
                               distance_label='median final puck distance (cm)')


def test_curves_on_environment_steps_and_puck_distance(tmp_path: pathlib.Path) -> None:
    path = tmp_path / 'curve.png'
    report.plot_learning_curves({'rig seed 0': PUSHER_ROWS}, path, 'pusher',
                                references={'oracle': 0.06}, axes=PUSHER_AXES)
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_default_axes_need_rl_steps(tmp_path: pathlib.Path) -> None:
    # The pusher's rows have no 'rl_step': the default (reacher) axes cannot plot them.
    with pytest.raises(KeyError, match='rl_step'):
        report.plot_learning_curves({'rig seed 0': PUSHER_ROWS}, tmp_path / 'curve.png', 'x')
