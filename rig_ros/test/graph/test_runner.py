"""The graph runner with stand-in nodes: output, stop sequence, signals, no orphans, restarts."""

import io
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from rig_ros.graph import NodeSpec, RespawnPolicy
from rig_ros.run.runner import GraphRunner, RestartDecision, RestartTracker

# A stand-in node: prints its pid (and its helper's), then behaves as argv[1] says.
NODE = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    mode = sys.argv[1]
    # Ctrl-C as a node has it, whatever this process inherited (a full test run's earlier
    # tests once left SIGINT ignored here: every stand-in then waited for SIGTERM).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if mode in ('ignore_int', 'ignore_all'):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if mode == 'ignore_all':
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    helper = None
    if mode != 'plain':  # a helper process in the node's process group
        helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        print('pids', os.getpid(), helper.pid if helper else '', flush=True)
        if mode == 'exit3':
            time.sleep(0.3)
            sys.exit(3)
        while True:
            time.sleep(0.02)
    except KeyboardInterrupt:
        print('bye', flush=True)
""")


def stand_in(spec: NodeSpec, params_dir: str) -> list[str]:
    """Command factory for GraphRunner: the node's name is the stand-in's mode."""
    return [sys.executable, '-c', NODE, spec.name]


def specs(*modes: str) -> list[NodeSpec]:
    return [NodeSpec(mode, 'camera_pipeline', f'/robot_{i}') for i, mode in enumerate(modes)]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = pathlib.Path(f'/proc/{pid}/stat').read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(')', 1)[1].split()[0] != 'Z'


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def pids_in(text: str) -> list[int]:
    return [int(pid) for pid in re.findall(r'pids (\d+) ?(\d*)', text) for pid in pid if pid]


def test_output_is_prefixed_and_the_graph_stops_when_a_node_exits():
    output = io.StringIO()
    runner = GraphRunner(specs('normal', 'exit3'), output=output, command=stand_in,
                         sigint_timeout=5.0)
    assert runner.run() == 3
    text = output.getvalue()
    assert re.search(r'^\[robot_0/normal\] pids \d+ \d+$', text, re.MULTILINE), text
    assert '[robot_0/normal] bye' in text
    assert '[runner] robot_1/exit3 exited with code 3; stopping the graph' in text
    pids = pids_in(text)
    assert len(pids) == 4
    assert wait_until(lambda: not any(map(alive, pids)), 5.0), text


def test_stop_escalates_from_sigint_to_sigterm_to_sigkill():
    runner = GraphRunner(specs('normal', 'ignore_int', 'ignore_all'), output=None,
                         command=stand_in, sigint_timeout=0.5, sigterm_timeout=0.5,
                         keep_lines=True)
    runner.start()
    assert wait_until(lambda: all(p.lines for p in runner.processes), 20.0)
    pids = pids_in('\n'.join(p.text() for p in runner.processes))
    started = time.monotonic()
    assert runner.stop() == 1
    assert time.monotonic() - started < 5.0
    assert runner.exit_codes == {'robot_0/normal': 0, 'robot_1/ignore_int': -signal.SIGTERM,
                                 'robot_2/ignore_all': -signal.SIGKILL}
    assert wait_until(lambda: not any(map(alive, pids)), 5.0)


RUNNER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {test_dir!r})
    from test_runner import specs, stand_in
    from rig_ros.run.runner import GraphRunner
    sys.exit(GraphRunner(specs(*sys.argv[1:]), command=stand_in, sigint_timeout=5.0).run())
""")


def start_runner(*modes: str) -> tuple[subprocess.Popen, list[int]]:
    """Run a GraphRunner in its own process; return it and its nodes' (and helpers') pids."""
    code = RUNNER.format(test_dir=str(pathlib.Path(__file__).parent))
    process = subprocess.Popen([sys.executable, '-c', code, *modes], stdout=subprocess.PIPE,
                               text=True)
    lines = []
    while len(pids_in('\n'.join(lines))) < sum(1 if m == 'plain' else 2 for m in modes):
        line = process.stdout.readline()
        assert line, '\n'.join(lines)
        lines.append(line)
    return process, pids_in('\n'.join(lines))


def test_sigint_or_sigterm_to_the_runner_stops_every_node():
    for sig in (signal.SIGINT, signal.SIGTERM):
        process, pids = start_runner('normal', 'normal')
        process.send_signal(sig)
        try:
            out, _ = process.communicate(timeout=15.0)
        finally:
            process.kill()
        assert process.returncode == 0, out
        assert out.count('bye') == 2, out
        assert wait_until(lambda: not any(map(alive, pids)), 5.0)


def test_a_killed_runner_leaves_no_orphans():
    process, pids = start_runner('plain', 'plain')
    process.kill()
    process.wait(timeout=5.0)
    process.stdout.close()
    assert wait_until(lambda: not any(map(alive, pids)), 10.0)


# Restarts. A stand-in that counts its runs in RUNS_DIR: 'crash_<n>' kills itself (SIGKILL) on
# its first n runs and then stays up; 'exit_<code>' exits with that code.
RESTARTED = textwrap.dedent("""
    import os, pathlib, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as NODE's
    kind, number = sys.argv[1].rsplit('_', 1)
    runs = pathlib.Path(os.environ['RUNS_DIR']) / sys.argv[1]
    run = len(runs.read_text()) if runs.exists() else 0
    runs.write_text('x' * (run + 1))
    try:
        time.sleep(0.2)
        if kind == 'crash' and run < int(number):
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == 'exit':
            sys.exit(int(number))
        while True:
            time.sleep(0.02)
    except KeyboardInterrupt:
        print('bye', flush=True)
""")
FAST = RespawnPolicy(delay_s=0.1, max_delay_s=0.25, stable_s=30.0, max_restarts=3,
                     window_s=60.0)


def restarting(*modes: str) -> list[NodeSpec]:
    return [NodeSpec(mode, 'policy', f'/robot_{i}', respawn=FAST) for i, mode in enumerate(modes)]


def restarted_runner(tmp_path: pathlib.Path, *modes: str) -> tuple[GraphRunner, io.StringIO]:
    output = io.StringIO()
    runner = GraphRunner(restarting(*modes), output=output, sigint_timeout=5.0,
                         env={**os.environ, 'RUNS_DIR': str(tmp_path)},
                         command=lambda spec, _: [sys.executable, '-c', RESTARTED, spec.name])
    return runner, output


def runs(tmp_path: pathlib.Path, mode: str) -> int:
    path = tmp_path / mode
    return len(path.read_text()) if path.exists() else 0


def test_a_crashed_node_is_restarted_with_back_off(tmp_path):
    runner, output = restarted_runner(tmp_path, 'crash_3', 'crash_0')
    runner.start()
    try:
        assert wait_until(lambda: runs(tmp_path, 'crash_3') == 4, 30.0), output.getvalue()
        assert runner.wait(timeout=1.0) is None, output.getvalue()  # the graph keeps running
    finally:
        runner.request_stop()
        assert runner.stop() == 0, output.getvalue()
    text = output.getvalue()
    for delay, restart in (('0.1', 1), ('0.2', 2), ('0.2', 3)):  # doubled, capped at 0.25 s
        assert (f'[runner] robot_0/crash_3 exited with code -9 (SIGKILL); restarting '
                f'/robot_0/crash_3 in {delay} s, restart {restart}\n') in text, text
    assert text.count('[runner] restarted robot_0/crash_3 (pid ') == 3, text
    assert runner.restarts == {'robot_0/crash_3': 3, 'robot_1/crash_0': 0}
    assert text.count('bye') == 2 and runs(tmp_path, 'crash_0') == 1, text


@pytest.mark.parametrize('mode, message', [
    ('crash_9', 'exited with code -9 (SIGKILL); it was restarted 3 times within 60 s: giving '
                'up; stopping the graph'),
    ('exit_2', 'exited with code 2; it refused its parameters, a restart would fail the same '
               'way: giving up; stopping the graph'),
    ('exit_0', 'exited with code 0; not restarting a clean exit; stopping the graph'),
])
def test_the_runner_gives_up_on_a_node_and_says_why(tmp_path, mode, message):
    runner, output = restarted_runner(tmp_path, mode, 'crash_0')
    code = runner.run()
    text = output.getvalue()
    assert f'[runner] robot_0/{mode} {message}\n' in text, text
    assert runs(tmp_path, mode) == (4 if mode == 'crash_9' else 1), text
    assert code == {'crash_9': 1, 'exit_2': 2, 'exit_0': 0}[mode]
    assert '[robot_1/crash_0] bye' in text


def test_the_runners_own_stop_restarts_nothing(tmp_path):
    runner, output = restarted_runner(tmp_path, 'crash_0', 'crash_0_')
    runner.start()
    assert wait_until(lambda: runs(tmp_path, 'crash_0_') == 1, 20.0)
    time.sleep(0.3)
    assert runner.stop() == 0
    time.sleep(0.3)
    assert runs(tmp_path, 'crash_0') == 1 and runner.restarts == {
        'robot_0/crash_0': 0, 'robot_1/crash_0_': 0}, output.getvalue()


def test_restart_tracker_backs_off_resets_and_gives_up():
    policy = RespawnPolicy(delay_s=1.0, max_delay_s=5.0, stable_s=10.0, max_restarts=4,
                           window_s=100.0)
    tracker = RestartTracker(policy)
    crash = -signal.SIGKILL
    delays = [tracker.exited(crash, started_at=t, now=t + 1.0).delay_s for t in (0, 5, 10)]
    assert delays == [1.0, 2.0, 4.0]
    # Up for stable_s: the next crash is a first one again (but counts in the window).
    assert tracker.exited(crash, started_at=20.0, now=31.0) == RestartDecision(1.0, 4)
    given_up = tracker.exited(crash, started_at=40.0, now=41.0)
    assert given_up.delay_s is None and 'restarted 4 times within 100 s' in given_up.reason
    # Restarts older than the window no longer count.
    assert tracker.exited(crash, started_at=150.0, now=151.0).delay_s == 2.0
    assert tracker.restarts == 5
    for code in (0, -signal.SIGINT, 130, 2):
        assert RestartTracker(policy).exited(code, 0.0, 1.0).delay_s is None
    assert RestartTracker(None).exited(crash, 0.0, 1.0) == RestartDecision(None, 0)
