"""RIG through the graph, as a session a user runs (`rig practice --steps N` and `rig demo`).

Stages, each written into the run directory:
1. Practise: the practice graph (`graph.practice_graph`) runs as processes on `<run_dir>`. Its
   learner owns the run's lifecycle (`core.practice_run`): with no VAE given it explores
   (random end-effector velocities through the policies, frames stored), pretrains the VAE on
   those frames and broadcasts it, then practises with imagined goals; with `vae_checkpoint`
   it practises at once. Everything goes through the graph; nothing is trained in this
   process. The operator (`rig_ros.run.session_operator`) follows the learner's status; at
   the step budget (environment steps over the fleet, exploration included) it switches the
   policies off, lets the learner pay the updates it owes (so the graph's updates per step
   match the in-process pipeline's) and stops the graph (the learner checkpoints on SIGINT).
2. Evaluate: the reach graph serves the learner's checkpoint (`train: false`) and its latest
   VAE. For each evaluation goal state (`core.pipeline.evaluation_goals`, the in-process
   pipeline's goals for the seed) the operator switches the policy off, resets the robot, has
   the sim render the goal state (`sim/goal_state` -> `sim/goal_image`) and sends that image on
   `rig/goal_image`, the user's path: the goal scheduler encodes it, the policy reaches it
   without noise. After `episode_length` steps the hand's distance to the goal is read from
   the sim (`robot/state` and `sim/ground_truth` of that step's frame).
With `eval_every` the practice stops every so many steps for an evaluation (a learning
curve); each stop restarts the graphs, and the learner resumes its stage. Results:
`result.json` (with each stage's wall time, from the learner's `stage.json`),
`metrics.jsonl`, `learning_curve.png`, `practice_progress.png`, `report.md`, and the graphs'
logs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Any, Callable, Optional, TextIO

import numpy as np
import yaml

from rig_ros import graph, report, tasks

from rig_ros.core.evaluation import (
    append_evaluation, Evaluation, EvaluationRecord, METRICS_FILE, read_evaluations)
from rig_ros.core.files import atomic_write_text
from rig_ros.core.lifecycle import STAGE_FILE
from rig_ros.core.trainer import check_fine_tune_schedule
from rig_ros.graph import NodeSpec
from rig_ros.interfaces import names
from rig_ros.run.runner import params_yaml

STATUS_LOG = 'practice_status.jsonl'
SESSION_PARAMS = 'session_params.yaml'
EVAL_PARAMS = 'session_eval_params.yaml'
STATUS_PERIOD_S = 0.5  # the learner's status period in a session (the budget's resolution)
GOAL_SETTLE_S = 0.5
QUIET_S = 2.5  # the learner's step count standing still this long: no more steps are coming


class SessionError(RuntimeError):
    """The session cannot go on (a node died, the graph stalled)."""


@dataclasses.dataclass
class SessionConfig:
    """One RIG session through the graph.

    task, seed: the task (simulated) and base seed of the graph and of the pretraining.
    steps: environment steps over the whole fleet, exploration included (resumed runs
        included): what the learner has received when practice stops.
    eval_every: steps between evaluations (0: one evaluation after practice); evaluations
        come only after the exploration budget, once there is a VAE.
    eval_goals: evaluation goals (the pipeline's `evaluation_goals` for the seed).
    episode_length: steps of a practice episode and of an evaluation attempt.
    success_threshold_m: final hand (+ puck) distance counted as a success.
    vae_checkpoint: VAE file or run directory to practise with; empty: the learner explores
        and pretrains one (`explore_frames`, `vae_steps`).
    explore_frames, vae_steps: the learner's exploration (frames kept) and VAE pretraining
        (minibatches) budgets.
    fine_tune_vae_every, fine_tune_vae_steps, fine_tune_vae_until: the learner's online VAE
        fine-tuning (stored transitions between rounds, 0: off; minibatches per round; stored
        transitions after which the rounds stop, 0: never).
    learning_starts, updates_per_step, batch_size, broadcast_every: the learner's TD3
        schedule (as core.pipeline's td3 settings) and weights broadcast period.
    robots: robot chains practising together (evaluation uses robot 0).
    params_file: the user's parameter YAML, merged under the session's own settings.
    catch_up: after the budget, wait for the learner to pay the updates it owes.
    startup_timeout_s: bound on a graph's start (discovery, first weights, first steps).
    stall_timeout_s: practice fails when no transition arrives for this long.
    catch_up_timeout_s: bound on the learner's catching up.
    """

    task: str = 'reacher'
    seed: int = 0
    steps: int = 4000
    eval_every: int = 0
    eval_goals: int = 20
    episode_length: int = 50
    success_threshold_m: float = 0.05
    vae_checkpoint: str = ''
    explore_frames: int = 3000
    vae_steps: int = 2500
    fine_tune_vae_every: int = 0
    fine_tune_vae_steps: int = 200
    fine_tune_vae_until: int = 0
    learning_starts: int = 1000
    updates_per_step: int = 2
    batch_size: int = 128
    broadcast_every: int = 200
    robots: int = 1
    params_file: Optional[str] = None
    catch_up: bool = True
    startup_timeout_s: float = 180.0
    stall_timeout_s: float = 60.0
    catch_up_timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        """Check the budgets; an error names the field."""
        for name in ('steps', 'eval_goals', 'episode_length', 'explore_frames', 'vae_steps',
                     'fine_tune_vae_steps', 'updates_per_step', 'batch_size',
                     'broadcast_every', 'robots'):
            if int(getattr(self, name)) < 1:
                raise ValueError(f'{name} must be positive, got {getattr(self, name)!r}')
        for name in ('eval_every', 'fine_tune_vae_every', 'fine_tune_vae_until',
                     'learning_starts'):
            if int(getattr(self, name)) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)!r}')
        check_fine_tune_schedule(self.fine_tune_vae_every, self.fine_tune_vae_until)
        tasks.task(self.task)  # ValueError naming the known tasks

    def checkpoints(self) -> list[int]:
        """Step counts at which to evaluate (after exploration, when the learner explores)."""
        if not self.eval_every or self.eval_every >= self.steps:
            return [self.steps]
        first = 0 if self.vae_checkpoint else self.explore_frames
        return [step for step in range(self.eval_every, self.steps, self.eval_every)
                if step > first] + [self.steps]


def state_distances(state: np.ndarray, goal_state: np.ndarray) -> dict[str, float]:
    """Distances of a sim state vector to a goal state, as `SawyerSim.distances` gives them."""
    state, goal = np.asarray(state, float), np.asarray(goal_state, float)
    result = {'hand_distance': float(np.linalg.norm(state[:2] - goal[:2]))}
    if state.size > 2:
        offsets = (state[2:] - goal[2:]).reshape(-1, 2)
        result['puck_distance'] = float(np.linalg.norm(offsets, axis=1).sum())
    return result


def evaluation_summary(results: list[dict[str, float]], threshold: float) -> dict[str, Any]:
    """Return an EvaluationRecord's fields of per-goal results, but for the step counts."""
    return {**EvaluationRecord.figures(Evaluation.from_results(results, threshold)),
            'initial_hand_distances': [r['initial_hand_distance'] for r in results]}


def merged_params(user_file: Optional[str], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the user's parameter YAML with the session's per-node settings on top."""
    values: dict[str, Any] = {}
    if user_file:
        values = yaml.safe_load(pathlib.Path(user_file).read_text()) or {}

    def merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value
    merge(values, overrides)
    return values


def with_parameters(specs: list[NodeSpec], executable: str, **parameters: Any) -> list[NodeSpec]:
    """Return the specs with extra parameters for every node running `executable`."""
    return [dataclasses.replace(spec, parameters={**spec.parameters, **parameters})
            if spec.executable == executable else spec for spec in specs]


def progress_line(status: dict[str, Any]) -> str:
    """Return a one-line summary of the learner's status for the session's progress log."""
    stage = status.get('stage', 'practise')
    if stage == 'explore':
        return (f"explore: {status.get('frames', 0)}/{status.get('explore_frames', '?')} "
                f"frames, {status.get('received', 0)} steps")
    if stage == 'pretrain':
        return f"pretrain: VAE step {status.get('vae_step', 0)}/{status.get('vae_steps', '?')}"
    return (f"practise: {status.get('received', 0)} steps, {status.get('updates', 0)} updates "
            f"({status.get('updates_behind', 0)} behind), weights "
            f"v{status.get('weights_version', 0)}, VAE v{status.get('vae_version', '?')}")


def learner_stage_wall_s(run_dir: pathlib.Path) -> dict[str, float]:
    """Return the wall time of the learner's finished stages (explore, pretrain).

    From the learner's stage.json (when each stage began): only stages that ended are given
    (their successor's start minus theirs); empty when the run had none (a given VAE) or the
    file is unreadable.
    """
    try:
        began = json.loads((run_dir / STAGE_FILE).read_text()).get('began', {})
    except (OSError, ValueError):
        return {}
    order = ('explore', 'pretrain', 'practise')
    return {stage: float(began[following]) - float(began[stage])
            for stage, following in zip(order, order[1:])
            if stage in began and following in began}


class Session:
    """Runs (or resumes) a session in `run_dir`; `run()` returns the result dict."""

    def __init__(self, config: SessionConfig, run_dir: str | os.PathLike,
                 log: Callable[[str], None] = print, progress: bool = True) -> None:
        self.config = config
        self.run_dir = pathlib.Path(run_dir).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.progress = progress
        self.stage_wall_s: dict[str, float] = {}
        self.curve: list[dict[str, Any]] = []
        self.practice_wall_s = 0.0
        self.policy_versions: set[int] = set()  # weights versions the policies acted with

    # Stage 1.

    def given_vae(self) -> str:
        """Return the given VAE checkpoint as an absolute path ('': the learner makes one)."""
        if not self.config.vae_checkpoint:
            return ''
        return str(pathlib.Path(self.config.vae_checkpoint).resolve())

    def goal_states(self) -> np.ndarray:
        """Return the evaluation goals: the in-process pipeline's for this seed."""
        from rig_ros.core.pipeline import evaluation_goals
        from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig
        sim = SawyerSim(SawyerSimConfig(task=self.config.task, seed=self.config.seed))
        try:
            return evaluation_goals(sim, self.config.eval_goals, self.config.seed)
        finally:
            sim.close()

    def params_file(self, vae_checkpoint: str, name: str = SESSION_PARAMS) -> str:
        """Write a graph's parameter file `name`: the user's, then the session's settings.

        vae_checkpoint: the VAE the learner broadcasts; '': the learner explores and
        pretrains its own (practice) or none.
        """
        config = self.config
        learner: dict[str, Any] = {
            'broadcast_every': config.broadcast_every, 'status_period_s': STATUS_PERIOD_S,
            'explore_frames': config.explore_frames, 'vae_steps': config.vae_steps,
            'fine_tune_vae_every': config.fine_tune_vae_every,
            'fine_tune_vae_steps': config.fine_tune_vae_steps,
            'fine_tune_vae_until': config.fine_tune_vae_until,
            'td3': {'learning_starts': config.learning_starts,
                    'updates_per_step': config.updates_per_step,
                    'batch_size': config.batch_size}}
        if vae_checkpoint:
            learner['vae_checkpoint'] = vae_checkpoint
        values = merged_params(config.params_file, {
            '/**/learner': {'ros__parameters': learner},
            '/**/goal_scheduler': {'ros__parameters': {
                'episode_length': config.episode_length}}})
        path = self.run_dir / name
        path.write_text(params_yaml(values))
        return str(path)

    # Graph plumbing.

    def _start(self, specs: list[NodeSpec], log_name: str) -> tuple[Any, TextIO]:
        from rig_ros.run.runner import GraphRunner
        stream = (self.run_dir / log_name).open('a')
        runner = GraphRunner(specs, output=stream, sigint_timeout=60.0)
        runner.start()
        return runner, stream

    def _operator(self, runner: Any, log_name: str) -> Any:
        from rig_ros.run.session_operator import Operator

        def alive() -> None:
            ended = runner.wait(timeout=0.0)
            if ended is not None:
                raise SessionError(f'{ended.label} exited with code {ended.poll()}; see '
                                   f'{self.run_dir / log_name}')
        return Operator(robots=self.config.robots, alive=alive)

    def _stop(self, runner: Any, stream: TextIO, log_name: str) -> None:
        code = runner.stop()
        stream.close()
        if code != 0:
            self.log(f'warning: a node did not stop cleanly ({runner.exit_codes}); see '
                     f'{self.run_dir / log_name}')

    # Stage 2.

    def practise(self, until_steps: int, params_file: str) -> dict[str, Any]:
        """Run the practice graph until the fleet has done `until_steps` steps in all."""
        config = self.config
        specs = graph.practice_graph(task=config.task, robots=config.robots,
                                     params_file=params_file, seed=config.seed,
                                     run_dir=str(self.run_dir))
        log_name = 'graph_practice.log'
        runner, stream = self._start(specs, log_name)
        operator = None
        start = time.perf_counter()
        try:
            operator = self._operator(runner, log_name)
            first = operator.wait(operator.learner_status, config.startup_timeout_s,
                                  'the learner status')
            if first.get('received', 0) >= until_steps:
                self.log(f"practice: {first.get('received')} steps already done")
                return first
            self.log(f'practice: to step {until_steps} through the graph')
            operator.wait_ready(config.startup_timeout_s)
            self._watch_practice(operator, until_steps, start)
            for robot in range(config.robots):
                operator.set_active(robot, False)
            status = (self._catch_up(operator) if config.catch_up
                      else operator.learner_status())
        finally:
            if operator is not None:
                self.policy_versions |= operator.policy_versions
                operator.close()
            self._stop(runner, stream, log_name)
            self.practice_wall_s += time.perf_counter() - start
            self.stage_wall_s['practice'] = self.practice_wall_s
        return status

    def _watch_practice(self, operator: Any, until_steps: int, start: float) -> None:
        """Return once the learner has received `until_steps` steps (its status counter).

        The status comes every `status_period_s`: the robots overshoot by up to that long.
        """
        last_progress: tuple[int, ...] = (0, 0)
        last_change = time.monotonic()
        startup_deadline = time.monotonic() + self.config.startup_timeout_s
        next_log = 0.0
        with (self.run_dir / STATUS_LOG).open('a') as status_log:
            while True:
                count = operator.transitions_seen()
                status = operator.learner_status()
                now = time.monotonic()
                # Steps, or VAE pretraining steps while the robots wait for the VAE.
                progress = (count, int(status.get('vae_step', 0)))
                if progress != last_progress:
                    last_progress, last_change = progress, now
                limit = startup_deadline if count == 0 else last_change + (
                    self.config.stall_timeout_s)
                if now > limit:
                    raise SessionError(
                        f'practice stalled at {count} steps (learner: '
                        f"{status.get('waiting_for', 'no status')}); see "
                        f'{self.run_dir / "graph_practice.log"}')
                done = status.get('received', 0) >= until_steps
                if now >= next_log or done:
                    next_log = now + 10.0
                    status_log.write(json.dumps({'wall_s': time.perf_counter() - start,
                                                 'steps_seen': count, **status}) + '\n')
                    status_log.flush()
                    if self.progress:
                        self.log(progress_line(status))
                if done:
                    return
                operator.check()
                time.sleep(0.2)

    def _catch_up(self, operator: Any) -> dict[str, Any]:
        """Wait until the learner has every step that will come and paid the updates owed.

        Done when its `received` count has stood still for QUIET_S and nothing is owed. (A
        learner may miss the first steps of a run, sent before it subscribed, so the
        operator's own count is no target.) Steps of the episodes the switch-off cut are
        stored (and owed) only at shutdown: fewer than an episode per robot.
        """
        quiet: dict[str, Any] = {'received': -1, 'since': 0.0}

        def caught_up() -> Optional[dict[str, Any]]:
            status = operator.learner_status()
            now = time.monotonic()
            if status.get('received') != quiet['received']:
                quiet.update(received=status.get('received'), since=now)
                return None
            if now - quiet['since'] < QUIET_S or status.get('updates_behind', 1) > 0:
                return None
            return status
        start = time.perf_counter()
        status = operator.wait(caught_up, self.config.catch_up_timeout_s,
                               'the learner catching up')
        self.log(f'practice: {operator.transitions_seen()} steps sent this run; the learner '
                 f"caught up in {time.perf_counter() - start:.0f} s at {status.get('received')}"
                 f" steps, {status.get('updates')} updates")
        return status

    # Stage 3.

    def evaluate(self, checkpoint: str, params_file: str,
                 goal_states: np.ndarray) -> list[dict[str, float]]:
        """Reach every goal state's image through the reach graph serving `checkpoint`."""
        config = self.config
        specs = graph.reach_graph(task=config.task, robots=1, params_file=params_file,
                                  seed=config.seed, checkpoint=checkpoint)
        # The operator counts the policy's steps by its transitions (no learner reads them).
        specs = with_parameters(specs, names.POLICY, publish_transitions=True)
        log_name = 'graph_evaluate.log'
        runner, stream = self._start(specs, log_name)
        operator = None
        start = time.perf_counter()
        try:
            operator = self._operator(runner, log_name)
            operator.wait_ready(config.startup_timeout_s)
            results = []
            for index, goal_state in enumerate(goal_states):
                result = reach_goal(operator, 0, goal_state, config.episode_length,
                                    timeout=config.startup_timeout_s if index == 0 else 60.0)
                results.append(result)
                if self.progress:
                    self.log(f'goal {index + 1}/{len(goal_states)}: hand '
                             f"{100 * result['initial_hand_distance']:.1f} -> "
                             f"{100 * result['hand_distance']:.1f} cm")
            return results
        finally:
            if operator is not None:
                operator.close()
            self._stop(runner, stream, log_name)
            self.stage_wall_s['evaluate'] = self.stage_wall_s.get('evaluate', 0.0) + (
                time.perf_counter() - start)

    # All stages.

    def run(self) -> dict[str, Any]:
        """Pretrain if needed, practise, evaluate, report; returns the result."""
        config = self.config
        start = time.perf_counter()
        vae = self.given_vae()
        params_file = self.params_file(vae)
        # Evaluation serves the practice's latest VAE: the given one, else the learner's.
        eval_params_file = self.params_file(vae or str(self.run_dir), EVAL_PARAMS)
        goal_states = self.goal_states()
        status: dict[str, Any] = {}
        done = self.finished_evaluations()
        for until in config.checkpoints():
            if until in done:  # a resumed session: this evaluation is in metrics.jsonl
                self.curve.append(done[until])
                continue
            status = self.practise(until, params_file)
            self.log(f'evaluating {len(goal_states)} goal images through the graph')
            results = self.evaluate(str(self.run_dir), eval_params_file, goal_states)
            received = int(status.get('received', until))
            record = EvaluationRecord(
                target_steps=until, rl_step=int(status.get('practice_received', received)),
                env_steps_total=received,
                updates=status.get('updates'), learner=status,
                **evaluation_summary(results, config.success_threshold_m))
            point = record.to_row()
            self.curve.append(point)
            append_evaluation(self.run_dir / METRICS_FILE, record)
            self.log(f"step {point['rl_step']}: success {point['rig_success_rate']:.2f}, "
                     f'median hand distance '
                     f"{100 * point['rig_final_hand_distance_median']:.1f} cm")
        if not status:
            status = self.curve[-1].get('learner', {})
        before_practice = learner_stage_wall_s(self.run_dir)
        if 'practice' in self.stage_wall_s:  # the graph's time, less exploring and pretraining
            self.stage_wall_s['practice'] = max(
                0.0, self.stage_wall_s['practice'] - sum(before_practice.values()))
        # In the order they ran: explore, pretrain, practice, evaluate.
        self.stage_wall_s = {**before_practice, **self.stage_wall_s}
        result = {'task': config.task, 'seed': config.seed, 'mode': 'graph',
                  'curve': self.curve, 'stage_wall_s': self.stage_wall_s,
                  'wall_s': time.perf_counter() - start, 'learner': status,
                  'vae_checkpoint': vae, **self.curve[-1]}
        atomic_write_text(self.run_dir / 'result.json',
                          json.dumps(result, indent=2, sort_keys=True))
        self.write_report(result)
        return result

    def finished_evaluations(self) -> dict[int, dict[str, Any]]:
        """Return the evaluations already in metrics.jsonl, by their target step count."""
        return {record.target_steps: record.to_row()
                for record in read_evaluations(self.run_dir / METRICS_FILE)
                if record.target_steps is not None}

    def write_report(self, result: dict[str, Any]) -> None:
        """Learning curve, practice progress and report.md next to result.json."""
        title = f'RIG through the ROS graph, simulated {self.config.task}'
        report.plot_learning_curves({f'graph, seed {self.config.seed}': self.curve},
                                    self.run_dir / 'learning_curve.png', title)
        report.plot_practice_progress(self.run_dir / STATUS_LOG,
                                      self.run_dir / 'practice_progress.png', title)
        summary = {k: v for k, v in result.items() if k not in ('learner',)}
        report.write_summary(summary, self.run_dir / 'report.md')
        learner = result.get('learner', {})
        with (self.run_dir / 'report.md').open('a') as stream:
            stream.write(
                '\nPractised through the ROS 2 graph (mujoco_sim, camera_pipeline, vae_encoder, '
                'policy, goal_scheduler, learner as processes over DDS): the learner explored, '
                'pretrained the VAE on the frames and practised (unless vae_checkpoint was '
                'given); evaluated by sending each goal image on rig/goal_image to the reach '
                'graph.\n')
            stream.write(f"- learner: {learner.get('received')} transitions received, "
                         f"{learner.get('stored')} stored, {learner.get('updates')} updates, "
                         f"weights version {learner.get('weights_version')}\n")
            stream.write('- figures: learning_curve.png, practice_progress.png; logs: '
                         'graph_practice.log, graph_evaluate.log\n')


def reach_goal(operator: Any, robot: int, goal_state: np.ndarray, steps: int,
               timeout: float = 60.0) -> dict[str, float]:
    """One evaluation attempt through the graph; returns the final and initial distances."""
    operator.set_active(robot, False, timeout)
    before = operator.last_frame_stamp(robot)
    operator.reset(robot, timeout)
    initial = operator.latest_frame(robot, after_ns=before, timeout=timeout)
    image = operator.render_goal(robot, goal_state, timeout)
    operator.send_goal_image(robot, image, timeout)
    # The operator saw the new goal; give the (latched) goal time to reach the policy too, so
    # that it does not take a step towards the previous goal first.
    time.sleep(GOAL_SETTLE_S)
    operator.set_active(robot, True, timeout)
    stamp = operator.wait_step(robot, steps, timeout + 2.0 * steps)
    final = operator.frame_at(robot, stamp, timeout)
    result = state_distances(final.state, goal_state)
    result['initial_hand_distance'] = state_distances(initial.state, goal_state)[
        'hand_distance']
    return result
