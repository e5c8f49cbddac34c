"""Where a re-set puts the scene besides its start: kept objects, the hand in its goal box.

A robot cannot put pucks back: after a reset they stay where the last episode pushed them
(`kept_objects`). A robot knows its hand: a reset may move it to a uniform point of the task's
hand-goal box, clear of the pucks (`hand_to_goal_box`), so that each episode starts as a goal
scene looks. Used by the pipeline's exploration (`core.pipeline.explore`) and the graph's
simulated reset (`sim.driver.SimDriver`); `hand_in_goal_box` tells which states have the hand
in that box (the pipeline's hand-box goals). States are a task's state vectors: the hand's (x, y),
then each puck's (x, y), in metres.
"""

from __future__ import annotations

import numpy as np

from rig_ros import tasks
from rig_ros.core.hands import HandBox

HAND_DIMS = 2
"""A state vector's first coordinates, the hand's (x, y); each puck's (x, y) follow."""

KEEP_CLEARANCE_M = 0.07
"""Hand centre to puck centre below which a kept puck would overlap the re-set hand."""


def kept_objects(reset_state: np.ndarray, objects: np.ndarray, task_name: str) -> np.ndarray:
    """Return the re-set state with the objects where they were, each one the hand can push.

    A puck outside the hand's workspace box (it cannot be pushed back) or within
    KEEP_CLEARANCE_M of the re-set hand goes back to the position the reset gave it.
    """
    spec = tasks.task(task_name)
    state = np.array(reset_state, dtype=float)
    # Views: writing a puck writes `state`.
    hand, pucks = state[:HAND_DIMS], state[HAND_DIMS:].reshape(-1, 2)
    low, high = np.array(spec.workspace_low), np.array(spec.workspace_high)
    for puck, kept in zip(pucks, np.asarray(objects, dtype=float).reshape(-1, 2)):
        if (np.all(kept >= low) and np.all(kept <= high)
                and np.linalg.norm(kept - hand) >= KEEP_CLEARANCE_M):
            puck[:] = kept
    return state


HAND_BOX_CLEARANCE_M = 0.06
"""Hand centre to puck centre that `hand_to_goal_box` keeps (the simulator's goal states')."""


def hand_to_goal_box(state: np.ndarray, task_name: str, rng: np.random.Generator,
                     draws: int = 1000) -> np.ndarray:
    """Return `state` with the hand at a uniform point of the task's hand-goal box.

    The point keeps HAND_BOX_CLEARANCE_M from every puck; when `draws` draws find none (pucks
    filling the box), or the task has no hand-goal box, the hand stays where it was.
    """
    spec = tasks.task(task_name)
    state = np.array(state, dtype=float)
    if spec.hand_goal_low is None or spec.hand_goal_high is None:
        return state
    pucks = state[HAND_DIMS:].reshape(-1, 2)
    for _ in range(draws):
        hand = rng.uniform(spec.hand_goal_low, spec.hand_goal_high)
        if np.all(np.linalg.norm(pucks - hand, axis=1) >= HAND_BOX_CLEARANCE_M):
            state[:HAND_DIMS] = hand
            break
    return state


def hand_in_goal_box(states: np.ndarray, task_name: str) -> np.ndarray:
    """Return which states (N, state_dim) have the hand inside the task's hand-goal box.

    A task without a hand-goal box (its goals span the reachable space) keeps every state.
    """
    spec = tasks.task(task_name)
    if spec.hand_goal_low is None or spec.hand_goal_high is None:
        return np.ones(len(states), dtype=bool)
    box = HandBox(spec.hand_goal_low, spec.hand_goal_high)
    return box.inside(np.asarray(states)[:, :HAND_DIMS])
