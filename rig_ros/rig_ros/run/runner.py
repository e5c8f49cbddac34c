"""Run a node graph from `rig_ros.graph` as OS processes (`rig practice` and `rig reach`).

The project's stand-in for `ros2 launch` where launch is not installed. Each `NodeSpec` becomes
one process, started like launch_ros starts it:

    python -m rig_ros.nodes.<executable> --ros-args -r __node:=NAME -r __ns:=NS
        --params-file <rig.yaml> [task and robot files] [--params-file <params_file>]
        --params-file <overrides.yaml>
        -r from:=to ...

The spec's `parameters` go into a small YAML file keyed by the node's fully qualified name and
passed last, as launch_ros does with dict parameters: rcl resolves overrides by the order in
which node keys first appear, so a `-p` rule (stored under `/**`) would lose to a
`/**/node_name` key of an earlier file.

Every child gets its own session and process group and dies with the runner (Linux parent-death
signal). SIGINT, SIGTERM and SIGHUP to the runner stop the graph: SIGINT to every child's group,
SIGTERM after `sigint_timeout`, SIGKILL after `sigterm_timeout`; a second signal skips the
grace period. Child output is prefixed with `[namespace/node]`.

Restarts: a supervisor thread watches the nodes. A node whose spec has a `respawn` policy
(`graph.RespawnPolicy`) and crashed is started again with the same command line after a
back-off (`RestartTracker`), and the runner says what died and what it does ('restarting
/robot_0/policy in 2.0 s, restart 3'). The graph stops, saying why, when a node without a
policy exits, when a node exits cleanly (code 0 or SIGINT: someone stopped it on purpose), when
it refused its parameters (`graph.EXIT_BAD_PARAMETERS`) or crashed too often. The runner's
own stop halts the supervisor first, so no node is restarted while the graph stops.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
from dataclasses import dataclass
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Optional, Sequence, TextIO

from rig_ros import graph
from rig_ros.graph import NodeSpec, RespawnPolicy
from rig_ros.run.launch_description import transport_environment

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SUPERVISE_PERIOD_S = 0.05
_PR_SET_PDEATHSIG = 1


def installed_executable(package: str, executable: str) -> Optional[str]:
    """Return `<prefix>/lib/<package>/<executable>` from the ament index, if installed."""
    try:
        from ament_index_python.packages import get_package_prefix
        prefix = get_package_prefix(package)
    except (ImportError, LookupError, KeyError, ValueError):
        return None
    path = pathlib.Path(prefix) / 'lib' / package / executable
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def executable_command(spec: NodeSpec) -> list[str]:
    """Return the program part of a command.

    rig_ros nodes run as `python -m rig_ros.nodes.<executable>` with this interpreter: the
    module whose `main` the console script of the same name calls (test_graph_description
    checks that), without depending on the colcon install's package metadata. Nodes of other
    packages run from their installed `lib/<package>/<executable>`.
    """
    if spec.package == graph.PACKAGE:
        return [sys.executable, '-m', f'{graph.PACKAGE}.nodes.{spec.executable}']
    path = installed_executable(spec.package, spec.executable)
    if path is None:
        raise FileNotFoundError(f'executable {spec.executable!r} of package {spec.package!r} '
                                'is not installed (is the workspace sourced?)')
    return [path]


def overrides_file_name(spec: NodeSpec) -> str:
    """File name of a node's parameter overrides: its fully qualified name, flattened."""
    return spec.fully_qualified_name.strip('/').replace('/', '__') + '.params.yaml'


def params_yaml(values: dict[str, Any]) -> str:
    """Return a ROS parameter file's YAML text: block style, no anchors or aliases.

    rcl refuses aliases ('Will not support aliasing'); a value shared by two nodes (a dict
    used twice, or a user's file with YAML anchors, read back into shared objects) would
    otherwise be written as one.
    """
    import yaml

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True
    return yaml.dump(values, Dumper=NoAliases, default_flow_style=False)


def write_overrides(spec: NodeSpec, directory: str) -> Optional[str]:
    """Write the spec's parameters as `{<fully qualified name>: {ros__parameters: ...}}`."""
    if not spec.parameters:
        return None
    path = pathlib.Path(directory) / overrides_file_name(spec)
    path.write_text(params_yaml(
        {spec.fully_qualified_name: {'ros__parameters': dict(spec.parameters)}}))
    return str(path)


def ros_arguments(spec: NodeSpec, overrides_file: Optional[str] = None) -> list[str]:
    """`--ros-args ...` for a spec: name, namespace, parameter files, remappings."""
    args = ['--ros-args', '-r', f'__node:={spec.name}', '-r', f'__ns:={spec.namespace}']
    for path in spec.param_files:
        args += ['--params-file', path]
    if overrides_file is not None:
        args += ['--params-file', overrides_file]
    for source, target in spec.remappings:
        args += ['-r', f'{source}:={target}']
    return args


def node_command(spec: NodeSpec, params_dir: str) -> list[str]:
    """Return a node's full command line; writes its overrides file into `params_dir`."""
    return executable_command(spec) + ros_arguments(spec, write_overrides(spec, params_dir))


def parse_ros_arguments(command: Sequence[str]) -> dict[str, Any]:
    """Read back what a command line gives a node (for checks and `--dry-run` readers)."""
    args = list(command[list(command).index('--ros-args') + 1:])
    result: dict[str, Any] = {'name': None, 'namespace': None, 'param_files': [],
                              'remappings': []}
    for flag, value in zip(args[::2], args[1::2]):
        if flag == '--params-file':
            result['param_files'].append(value)
        elif flag == '-r':
            source, target = value.split(':=', 1)
            if source == '__node':
                result['name'] = target
            elif source == '__ns':
                result['namespace'] = target
            else:
                result['remappings'].append((source, target))
        else:
            raise ValueError(f'unexpected ROS argument {flag} {value}')
    return result


def _parent_death_signal() -> Optional[Callable[[], None]]:
    """Return a preexec function: the child gets SIGTERM when the runner dies (Linux).

    It also unblocks SIGINT and SIGTERM in the child: a blocked signal mask survives exec,
    and a runner started from a thread that blocks them (rclpy's, a test harness's) would
    otherwise start nodes that ignore Ctrl-C until SIGTERM comes.
    """
    if not sys.platform.startswith('linux'):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def _set() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return _set


def describe_exit(code: int) -> str:
    """Return 'code 3', or 'code -9 (SIGKILL)' for a death by a signal."""
    if code >= 0:
        return f'code {code}'
    try:
        return f'code {code} ({signal.Signals(-code).name})'
    except ValueError:
        return f'code {code} (signal {-code})'


@dataclass(frozen=True)
class RestartDecision:
    """What to do about a node that exited: restart it after `delay_s`, or not (`reason`)."""

    delay_s: Optional[float]  # None: no restart; the graph stops
    restart: int  # the number of this restart (the node's restarts so far when none)
    reason: str = ''


class RestartTracker:
    """One node's restarts under a `graph.RespawnPolicy` (None: never); times are passed in."""

    def __init__(self, policy: Optional[RespawnPolicy]) -> None:
        self.policy = policy
        self.restarts = 0
        self._times: collections.deque[float] = collections.deque()  # recent restarts
        self._delay = policy.delay_s if policy else 0.0

    def exited(self, code: int, started_at: float, now: float) -> RestartDecision:
        """Decide about a node that started at `started_at` and exited with `code` at `now`."""
        policy = self.policy
        if policy is None:
            return RestartDecision(None, self.restarts)
        if code in graph.CLEAN_EXITS:
            return RestartDecision(None, self.restarts, 'not restarting a clean exit')
        if code == graph.EXIT_BAD_PARAMETERS:
            return RestartDecision(None, self.restarts, 'it refused its parameters, a restart '
                                   'would fail the same way: giving up')
        if now - started_at >= policy.stable_s:
            self._delay = policy.delay_s  # it had recovered: back off from the start again
        while self._times and now - self._times[0] > policy.window_s:
            self._times.popleft()
        if len(self._times) >= policy.max_restarts:
            return RestartDecision(None, self.restarts, f'it was restarted {len(self._times)} '
                                   f'times within {policy.window_s:g} s: giving up')
        delay = self._delay
        self._delay = min(2.0 * delay, policy.max_delay_s)
        self._times.append(now)
        self.restarts += 1
        return RestartDecision(delay, self.restarts)


class NodeProcess:
    """One running node: its process, its process group and its prefixed output.

    lines: with `keep_lines`, the list to append the output to (a restarted node continues
    its predecessor's).
    """

    def __init__(self, label: str, command: list[str], env: dict[str, str],
                 output: Optional[TextIO], lock: threading.Lock,
                 keep_lines: bool = False, lines: Optional[list[str]] = None) -> None:
        self.label = label
        self.command = command
        self.lines: list[str] = [] if lines is None else lines
        self._output = output
        self._lock = lock
        self._keep = keep_lines
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, start_new_session=True,
            preexec_fn=_parent_death_signal())
        self._reader = threading.Thread(target=self._read, name=f'output {label}', daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b''):
            line = raw.decode(errors='replace').rstrip('\n')
            if self._keep:
                self.lines.append(line)
            if self._output is not None:
                with self._lock:
                    try:
                        self._output.write(f'[{self.label}] {line}\n')
                        self._output.flush()
                    except (OSError, ValueError):  # closed reader: keep draining the pipe
                        self._output = None
        self.process.stdout.close()

    @property
    def pid(self) -> int:
        """Process id (also the id of its process group)."""
        return self.process.pid

    def poll(self) -> Optional[int]:
        """Exit code, or None while running."""
        return self.process.poll()

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the node's whole process group (ignored once it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def join_output(self, timeout: float = 2.0) -> None:
        """Wait for the output reader to drain the pipe."""
        self._reader.join(timeout)

    def text(self) -> str:
        """Return the output so far (with `keep_lines`)."""
        return '\n'.join(self.lines)


def stop_processes(processes: Sequence[NodeProcess], *, sigint_timeout: float,
                   sigterm_timeout: float,
                   hurry: Optional[threading.Event] = None) -> None:
    """Stop processes: SIGINT, then SIGTERM, then SIGKILL to each process group."""
    for sig, timeout in ((signal.SIGINT, sigint_timeout), (signal.SIGTERM, sigterm_timeout),
                         (signal.SIGKILL, 5.0)):
        alive = [p for p in processes if p.poll() is None]
        if not alive:
            break
        for process in alive:
            process.signal_group(sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(p.poll() is None for p in alive):
            if hurry is not None and hurry.is_set() and sig != signal.SIGKILL:
                hurry.clear()
                break
            time.sleep(0.02)
    for process in processes:
        # Whatever a node started in its group goes too.
        process.signal_group(signal.SIGKILL)
        process.join_output()


class GraphRunner:
    """Start a graph's nodes as processes, supervise them (restarts) and stop them all.

    specs: the nodes to run; their `respawn` policies say which are restarted after a crash.
    env: environment of the children (default: this process's).
    output: where prefixed child output goes (None: discarded).
    sigint_timeout / sigterm_timeout: grace periods of the stop sequence, seconds.
    keep_lines: also keep each child's output lines in memory (`NodeProcess.lines`).
    command: (spec, params_dir) -> command line; `node_command` unless a test swaps it.
    """

    def __init__(self, specs: Sequence[NodeSpec], *, env: Optional[dict[str, str]] = None,
                 output: Optional[TextIO] = sys.stdout, sigint_timeout: float = 10.0,
                 sigterm_timeout: float = 5.0, keep_lines: bool = False,
                 command: Callable[[NodeSpec, str], list[str]] = node_command) -> None:
        graph.check_graph(specs)
        self.specs = list(specs)
        self._command = command
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault('PYTHONUNBUFFERED', '1')
        # The package's Fast DDS profile unless the environment chooses transports itself.
        self.env.update(transport_environment(self.env))
        self.output = output
        self.sigint_timeout = sigint_timeout
        self.sigterm_timeout = sigterm_timeout
        self.keep_lines = keep_lines
        self.processes: list[NodeProcess] = []  # the current process of each spec
        self._lock = threading.Lock()
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        self._stop_requested = threading.Event()
        self._hurry = threading.Event()
        self.exit_codes: dict[str, Optional[int]] = {}
        self._commands: list[list[str]] = []
        self._started_at: list[float] = []
        self._trackers = [RestartTracker(spec.respawn) for spec in self.specs]
        self._restart_at: dict[int, float] = {}  # spec index -> when to start it again
        self._ended: Optional[NodeProcess] = None  # the node whose exit stops the graph
        self._halt = threading.Event()  # no more checks and restarts
        self._released = threading.Event()  # every node is stopped: the supervisor may end
        self._supervising = threading.Lock()  # held while the supervisor checks or restarts
        self._supervisor: Optional[threading.Thread] = None

    def commands(self, params_dir: str) -> list[list[str]]:
        """Every node's command line (writes the overrides files into `params_dir`)."""
        return [self._command(spec, params_dir) for spec in self.specs]

    def say(self, text: str) -> None:
        """Print a runner message between the children's lines."""
        if self.output is not None:
            with self._lock:
                self.output.write(f'[runner] {text}\n')
                self.output.flush()

    @property
    def restarts(self) -> dict[str, int]:
        """How often each node was restarted, by label."""
        return {spec.fully_qualified_name.lstrip('/'): tracker.restarts
                for spec, tracker in zip(self.specs, self._trackers)}

    def start(self) -> None:
        """Start every node (in order) and the supervisor; on a failure stop what started."""
        self._tmp = tempfile.TemporaryDirectory(prefix='rig_graph_')
        try:
            self._commands = self.commands(self._tmp.name)
            for spec, command in zip(self.specs, self._commands):
                label = spec.fully_qualified_name.lstrip('/')
                self.processes.append(NodeProcess(label, command, self.env, self.output,
                                                  self._lock, self.keep_lines))
                self._started_at.append(time.monotonic())
                self.say(f'started {label} (pid {self.processes[-1].pid})')
        except BaseException:
            self.stop()
            raise
        self._supervisor = threading.Thread(target=self._supervise, name='graph supervisor',
                                            daemon=True)
        self._supervisor.start()

    def _supervise(self) -> None:
        """Check the nodes until the stop; live on until every node is stopped.

        A child's parent-death signal fires when the *thread* that started it ends, so the
        thread that starts restarted nodes must outlive them.
        """
        while not self._halt.wait(SUPERVISE_PERIOD_S):
            with self._supervising:
                if not self._halt.is_set() and self._ended is None:
                    self._check()
        self._released.wait()

    def _check(self) -> None:
        """Restart crashed nodes when due; note an exit that stops the graph."""
        for index, process in enumerate(self.processes):
            now = time.monotonic()
            if index in self._restart_at:
                if now >= self._restart_at[index] and not self._restart(index):
                    return
                continue
            code = process.poll()
            if code is None:
                continue
            # Whatever the node started in its group goes with it.
            process.signal_group(signal.SIGKILL)
            decision = self._trackers[index].exited(code, self._started_at[index], now)
            what = f'{process.label} exited with {describe_exit(code)}'
            if decision.delay_s is None:
                reason = f'{decision.reason}; ' if decision.reason else ''
                self.say(f'{what}; {reason}stopping the graph')
                self._ended = process
                return
            self.say(f'{what}; restarting {self.specs[index].fully_qualified_name} in '
                     f'{decision.delay_s:.1f} s, restart {decision.restart}')
            self._restart_at[index] = now + decision.delay_s

    def _restart(self, index: int) -> bool:
        """Start spec `index` again with its command line; False (graph ends) if it fails."""
        del self._restart_at[index]
        old = self.processes[index]
        old.join_output(0.5)
        try:
            process = NodeProcess(old.label, self._commands[index], self.env, self.output,
                                  self._lock, self.keep_lines, lines=old.lines)
        except OSError as error:
            self.say(f'cannot restart {old.label}: {error}; stopping the graph')
            self._ended = old
            return False
        self.processes[index] = process
        self._started_at[index] = time.monotonic()
        self.say(f'restarted {old.label} (pid {process.pid})')
        return True

    def request_stop(self) -> None:
        """Ask `run` to stop the graph; a second request shortens the grace periods."""
        if self._stop_requested.is_set():
            self._hurry.set()
        self._stop_requested.set()

    def wait(self, timeout: Optional[float] = None) -> Optional[NodeProcess]:
        """Block until the graph must stop, a stop is requested or `timeout` passes.

        Returns the node whose exit stops the graph, else None. Restarted crashes do not end
        the wait.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop_requested.is_set():
            if self._ended is not None:
                return self._ended
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self._stop_requested.wait(SUPERVISE_PERIOD_S)
        return None

    def stop(self) -> int:
        """Stop every node; return 0 if all ended cleanly, else the first bad exit code."""
        self._halt.set()
        with self._supervising:  # a restart under way completes; none follows
            pass
        stop_processes(self.processes, sigint_timeout=self.sigint_timeout,
                       sigterm_timeout=self.sigterm_timeout, hurry=self._hurry)
        self._released.set()
        if self._supervisor is not None:
            self._supervisor.join()
        code = 0
        for process in self.processes:
            returncode = process.poll()
            self.exit_codes[process.label] = returncode
            if returncode not in graph.CLEAN_EXITS and code == 0:
                code = 1 if returncode is None or returncode < 0 else returncode
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return code

    def run(self) -> int:
        """Start the graph, run until a signal or a node exits, stop everything."""
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {sig: signal.signal(sig, lambda *_: self.request_stop())
                        for sig in STOP_SIGNALS}
        stopped = False
        try:
            self.start()
            ended = self.wait()
            if ended is None:  # else the supervisor said why
                self.say('stopping the graph')
            code = self.stop()
            stopped = True
            if ended is not None and code == 0:
                code = ended.poll() or 0
            return code
        finally:
            if not stopped:
                self.stop()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


def run_graph(specs: Sequence[NodeSpec], *, sigint_timeout: float = 10.0,
              dry_run: bool = False, output: TextIO = sys.stdout) -> int:
    """Run the graph until a signal or a node exits; return the exit code.

    With `dry_run`, print every node's parameters and command line instead.
    """
    runner = GraphRunner(specs, output=output, sigint_timeout=sigint_timeout)
    if dry_run:
        with tempfile.TemporaryDirectory(prefix='rig_graph_') as params_dir:
            for spec, command in zip(specs, runner.commands(params_dir)):
                output.write(f'# {spec.fully_qualified_name} {dict(spec.parameters)}\n')
                output.write(shlex.join(command) + '\n')
        return 0
    return runner.run()
