"""How long a Ctrl-C takes to stop the practice graph, under CPU load.

Starts the lockstep reacher practice graph with the project's runner (an untrained VAE, the
learner training and checkpointing into a run directory), lets it practise, then stops it as
Ctrl-C does (SIGINT to every node's process group) and times each node's exit. Repeats for
`--trials` graphs while `--load` busy-loop processes keep the cores busy. A node still running
after `--grace` seconds (launch's SIGTERM escalation: 5 s) is counted as late.

Readable lines first; the last line is JSON (`stop_s` per trial: the slowest node,
`node_stop_s`: per node p50/max, `late`: nodes past the grace period, `escalated`: nodes that
needed SIGTERM or SIGKILL). Exit 0 whether or not every stop was in time.
"""

import argparse
import json
import multiprocessing
import os
import pathlib
import sys
import tempfile
import threading
import time
from typing import Any, Optional

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from graph_latency import percentiles, setup_files  # noqa: E402

from rig_ros.run.domains import reserve_domain_id  # noqa: E402


def busy_loop() -> None:
    """Keep one core busy until killed."""
    while True:
        pass


def learner_stored(log_path: pathlib.Path) -> int:
    """Return the learner's latest `stored` count in the graph log (0 before any)."""
    stored = 0
    for line in log_path.read_text(errors='replace').splitlines():
        if '[learner]' in line and 'status {' in line:
            try:
                stored = json.loads(line[line.index('{'):]).get('stored', stored)
            except ValueError:
                pass
    return stored


def timed_stop(runner: Any, sigint_timeout: float) -> dict[str, Optional[float]]:
    """Stop the graph as Ctrl-C does; return each node's exit time after the SIGINT."""
    processes = list(runner.processes)
    exits: dict[str, Optional[float]] = {p.label: None for p in processes}
    start = time.monotonic()
    stopper = threading.Thread(target=runner.stop)
    stopper.start()
    while stopper.is_alive() or any(v is None for v in exits.values()):
        for process in processes:
            if exits[process.label] is None and process.poll() is not None:
                exits[process.label] = time.monotonic() - start
        if not stopper.is_alive() and all(p.poll() is not None for p in processes):
            break
        time.sleep(0.005)
    stopper.join()
    return exits


def run_trial(specs: list, directory: pathlib.Path, practice_s: float,
              min_stored: int, sigint_timeout: float) -> tuple[dict, dict, int]:
    """Run one graph until it practised, stop it; return exit times, codes, stored."""
    from rig_ros.run.runner import GraphRunner
    log_path = directory / 'graph.log'
    with open(log_path, 'w') as log:
        runner = GraphRunner(specs, output=log, sigint_timeout=sigint_timeout)
        runner.start()
        deadline = time.monotonic() + 180.0
        started = None
        while time.monotonic() < deadline and runner.wait(timeout=0.5) is None:
            if started is None and learner_stored(log_path) >= min_stored:
                started = time.monotonic()
            if started is not None and time.monotonic() - started >= practice_s:
                break
        stored = learner_stored(log_path)
        exits = timed_stop(runner, sigint_timeout)
    return exits, dict(runner.exit_codes), stored


def main(argv: Optional[list[str]] = None) -> int:
    """Measure the stop times; print them, JSON last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='2 trials, short practice')
    parser.add_argument('--trials', type=int, default=10)
    parser.add_argument('--load', type=int, default=2, help='busy-loop processes')
    parser.add_argument('--practice-s', type=float, default=15.0,
                        help='practice this long after the learner stored its first steps')
    parser.add_argument('--grace', type=float, default=5.0,
                        help="launch's SIGINT grace period (sigterm_timeout)")
    args = parser.parse_args(argv)
    trials, practice_s = (2, 5.0) if args.quick else (args.trials, args.practice_s)

    from rig_ros import graph
    from rig_ros.core.td3 import TD3Config
    domain, lock = reserve_domain_id()
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    loads = [multiprocessing.Process(target=busy_loop, daemon=True) for _ in range(args.load)]
    for load in loads:
        load.start()
    stops: list[float] = []
    per_node: dict[str, list[float]] = {}
    late: list[str] = []
    escalated: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix='rig_stop_bench_') as tmp:
            directory = pathlib.Path(tmp)
            td3 = TD3Config(learning_starts=100, updates_per_step=1, batch_size=64,
                            hidden_sizes=(64, 64))
            _, params = setup_files(directory, td3, episode_length=20, learning_starts=100)
            for trial in range(trials):
                run_dir = directory / f'run_{trial}'
                specs = graph.practice_graph('reacher', params_file=str(params),
                                             run_dir=str(run_dir))
                exits, codes, stored = run_trial(specs, directory, practice_s, 1,
                                                 sigint_timeout=10.0)
                slowest = max((t for t in exits.values() if t is not None), default=0.0)
                stops.append(slowest)
                for label, seconds in exits.items():
                    per_node.setdefault(label, []).append(seconds or 0.0)
                    if seconds is None or seconds > args.grace:
                        late.append(f'{trial}:{label}:{seconds}')
                    if codes.get(label) not in graph.CLEAN_EXITS:
                        escalated.append(f'{trial}:{label}:{codes.get(label)}')
                order = sorted(exits.items(), key=lambda item: -(item[1] or 0.0))
                print(f'trial {trial}: {stored} steps stored, stopped in {slowest:.2f} s ('
                      + ', '.join(f'{label} {seconds:.2f}' for label, seconds in order[:3])
                      + ')', flush=True)
    finally:
        for load in loads:
            load.kill()
        lock.close()
    result = {'trials': trials, 'load': args.load, 'practice_s': practice_s,
              'stop_s': [round(s, 3) for s in stops],
              'stop_s_max': round(max(stops), 3), 'stop_s_p50': percentiles(stops)['p50'] / 1e3,
              'node_stop_s': {label: {'p50': percentiles(v)['p50'] / 1e3,
                                      'max': round(max(v), 3)}
                              for label, v in sorted(per_node.items())},
              'late': late, 'escalated': escalated}
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
