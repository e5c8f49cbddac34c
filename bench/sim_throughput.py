"""Throughput of the simulated Sawyer on one core: control steps with and without 84x84 frames.

Prints readable lines, then, last, one JSON line with `step_render_per_s_84` and
`physics_steps_per_s` (control steps of `control_period_s`, without rendering).
"""

import argparse
import json
import os
import sys
import time

from rig_ros.tasks import TASK_NAMES

TARGET_STEP_RENDER_PER_S_84 = 120.0


def _rate(function, count: int) -> float:
    """Call `function` `count` times; return calls per second."""
    start = time.perf_counter()
    for _ in range(count):
        function()
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Measure and report; exit status 0 whether or not the target is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='fewer iterations (~2 s)')
    parser.add_argument('--task', default='pusher', choices=TASK_NAMES)
    args = parser.parse_args(argv)
    # One core: Mesa's llvmpipe rasteriser reads LP_NUM_THREADS when the GL context starts.
    os.environ.setdefault('LP_NUM_THREADS', '1')
    os.environ.setdefault('MUJOCO_GL', 'egl')
    os.environ.setdefault('PYOPENGL_PLATFORM', 'egl')
    import numpy as np  # after the environment is set: importing mujoco picks the GL backend
    from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig

    count = 100 if args.quick else 1000
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, (count, 2))
    with SawyerSim(SawyerSimConfig(task=args.task)) as sim:
        substeps = round(sim.config.control_period_s / sim.model.opt.timestep)
        sim.render()  # create the GL context outside the timed loops
        actions_iter = iter(np.tile(actions, (4, 1)))

        def step() -> None:
            sim.step(next(actions_iter))

        def step_render() -> None:
            sim.step(next(actions_iter))
            sim.render(84, 84)

        physics = _rate(step, count)
        step_render_84 = _rate(step_render, count)
        render_84 = _rate(lambda: sim.render(84, 84), count)

    result = {
        'step_render_per_s_84': round(step_render_84, 1),
        'physics_steps_per_s': round(physics, 1),
        'step_render_to_physics_ratio': round(step_render_84 / physics, 4),
        'render_per_s_84': round(render_84, 1),
        'mj_steps_per_s': round(physics * substeps, 1),
        'substeps_per_control_step': substeps,
        'task': args.task,
        'iterations': count,
        'lp_num_threads': os.environ['LP_NUM_THREADS'],
        'target_step_render_per_s_84': TARGET_STEP_RENDER_PER_S_84,
        'meets_target': step_render_84 >= TARGET_STEP_RENDER_PER_S_84,
    }
    print(f'task {args.task}, {count} iterations, LP_NUM_THREADS={result["lp_num_threads"]}')
    print(f'physics only : {physics:8.1f} control steps/s '
          f'({substeps} x {sim.model.opt.timestep * 1e3:.1f} ms physics steps each)')
    print(f'step + 84x84 : {step_render_84:8.1f} /s (target >= {TARGET_STEP_RENDER_PER_S_84:.0f})')
    print(f'84x84 render : {render_84:8.1f} /s')
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
