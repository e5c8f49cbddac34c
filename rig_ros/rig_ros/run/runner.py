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
grace period. The graph also stops when any node exits. Child output is prefixed with
`[namespace/node]`.
"""

from __future__ import annotations

import contextlib
import ctypes
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
from rig_ros.graph import NodeSpec

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
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


def write_overrides(spec: NodeSpec, directory: str) -> Optional[str]:
    """Write the spec's parameters as `{<fully qualified name>: {ros__parameters: ...}}`."""
    if not spec.parameters:
        return None
    import yaml
    path = pathlib.Path(directory) / overrides_file_name(spec)
    path.write_text(yaml.safe_dump(
        {spec.fully_qualified_name: {'ros__parameters': dict(spec.parameters)}},
        default_flow_style=False))
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
    """Return a preexec function: the child gets SIGTERM when the runner dies (Linux)."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def _set() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return _set


class NodeProcess:
    """One running node: its process, its process group and its prefixed output."""

    def __init__(self, label: str, command: list[str], env: dict[str, str],
                 output: Optional[TextIO], lock: threading.Lock,
                 keep_lines: bool = False) -> None:
        self.label = label
        self.command = command
        self.lines: list[str] = []
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
    """Start a graph's nodes as processes, supervise them and stop them all.

    specs: the nodes to run.
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
        self.output = output
        self.sigint_timeout = sigint_timeout
        self.sigterm_timeout = sigterm_timeout
        self.keep_lines = keep_lines
        self.processes: list[NodeProcess] = []
        self._lock = threading.Lock()
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        self._stop_requested = threading.Event()
        self._hurry = threading.Event()
        self.exit_codes: dict[str, Optional[int]] = {}

    def commands(self, params_dir: str) -> list[list[str]]:
        """Every node's command line (writes the overrides files into `params_dir`)."""
        return [self._command(spec, params_dir) for spec in self.specs]

    def say(self, text: str) -> None:
        """Print a runner message between the children's lines."""
        if self.output is not None:
            with self._lock:
                self.output.write(f'[runner] {text}\n')
                self.output.flush()

    def start(self) -> None:
        """Start every node (in order); on a failure stop the ones already started."""
        self._tmp = tempfile.TemporaryDirectory(prefix='rig_graph_')
        try:
            for spec, command in zip(self.specs, self.commands(self._tmp.name)):
                label = spec.fully_qualified_name.lstrip('/')
                self.processes.append(NodeProcess(label, command, self.env, self.output,
                                                  self._lock, self.keep_lines))
                self.say(f'started {label} (pid {self.processes[-1].pid})')
        except BaseException:
            self.stop()
            raise

    def request_stop(self) -> None:
        """Ask `run` to stop the graph; a second request shortens the grace periods."""
        if self._stop_requested.is_set():
            self._hurry.set()
        self._stop_requested.set()

    def wait(self, timeout: Optional[float] = None) -> Optional[NodeProcess]:
        """Block until a node exits (returned) or a stop is requested / `timeout` (None)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop_requested.is_set():
            for process in self.processes:
                if process.poll() is not None:
                    return process
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self._stop_requested.wait(0.05)
        return None

    def stop(self) -> int:
        """Stop every node; return 0 if all ended cleanly, else the first bad exit code."""
        stop_processes(self.processes, sigint_timeout=self.sigint_timeout,
                       sigterm_timeout=self.sigterm_timeout, hurry=self._hurry)
        code = 0
        for process in self.processes:
            returncode = process.poll()
            self.exit_codes[process.label] = returncode
            if returncode not in (0, -signal.SIGINT, 130) and code == 0:
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
            if ended is not None:
                self.say(f'{ended.label} exited with code {ended.poll()}; stopping the graph')
            else:
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
