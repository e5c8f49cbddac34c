"""The graph runner with stand-in nodes: prefixed output, stop sequence, signals, no orphans."""

import io
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import time

from rig_ros.graph import NodeSpec
from rig_ros.run.runner import GraphRunner

# A stand-in node: prints its pid (and its helper's), then behaves as argv[1] says.
NODE = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    mode = sys.argv[1]
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
