"""The goal-conditioned actor alone: what acting loads, without critics, targets or optimisers.

`Actor` maps concat(obs, goal) to an action in [-1, 1]; its state dict is the one TD3 trains
and broadcasts ('0.weight', '0.bias', ... of its linear layers), so checkpoints and weights
messages of every version load into it. `GoalPolicy` acts with an actor on numpy inputs and
adds exploration noise when asked.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from rig_ros.core.noise import ExplorationConfig, make_noise


@dataclass(frozen=True)
class PolicySpec:
    """Shape of an actor: what a weights message carries besides the tensors."""

    obs_dim: int
    """Observation size (a latent)."""
    goal_dim: int
    """Goal size (a latent)."""
    action_dim: int
    """Action size."""
    hidden_sizes: tuple[int, ...]
    """Widths of the hidden layers."""


def mlp_layers(in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int) -> list[nn.Module]:
    """Return the layers of a ReLU MLP whose last layer starts near zero."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    last = nn.Linear(in_dim, out_dim)
    nn.init.uniform_(last.weight, -3e-3, 3e-3)
    nn.init.uniform_(last.bias, -3e-3, 3e-3)
    return [*layers, last]


def mlp(in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """Build a ReLU MLP whose last layer starts near zero (small initial Q and actions)."""
    return nn.Sequential(*mlp_layers(in_dim, hidden_sizes, out_dim))


class Actor(nn.Sequential):
    """TD3's policy network: concat(obs, goal) -> tanh-squashed action in [-1, 1]."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(*mlp_layers(spec.obs_dim + spec.goal_dim, spec.hidden_sizes,
                                     spec.action_dim), nn.Tanh())
        self.spec = spec

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor],
                        spec: Optional[PolicySpec] = None) -> 'Actor':
        """Build an actor holding `state`; without `spec`, goals are the size of observations.

        Raises ValueError (KeyError, RuntimeError inside) when the state does not fit.
        """
        if spec is None:
            in_size, hidden, out_size = actor_sizes(state)
            spec = PolicySpec(in_size // 2, in_size - in_size // 2, out_size, hidden)
        actor = cls(spec)
        try:
            actor.load_state_dict(state)
        except (KeyError, RuntimeError) as error:
            text = ' '.join(str(error).split())[:300]
            raise ValueError(f'the weights do not fit the actor {spec}: {text}') from None
        return actor

    def detached_state_dict(self) -> dict[str, torch.Tensor]:
        """Return a CPU copy of the weights (for broadcasts and for a rollback)."""
        return {name: value.detach().cpu().clone() for name, value in self.state_dict().items()}


def actor_sizes(state: Mapping[str, Any]) -> tuple[int, tuple[int, ...], int]:
    """Return (input size, hidden sizes, output size) of an actor's state dict.

    Raises ValueError when it holds no linear layer weights.
    """
    weights = [state[key] for key in sorted(
        (k for k in state if k.endswith('.weight') and k.split('.')[0].isdigit()),
        key=lambda k: int(k.split('.')[0]))]
    if not weights:
        raise ValueError('the state holds no actor weights')
    return (int(weights[0].shape[1]), tuple(int(w.shape[0]) for w in weights[:-1]),
            int(weights[-1].shape[0]))


class GoalPolicy:
    """Acts with an actor: numpy observation and goal in, a float32 action in [-1, 1] out.

    With explore=True the stateful exploration noise is added (call reset_noise() at every
    episode start) and the result is clipped to [-1, 1].
    """

    def __init__(self, actor: Actor, exploration: Optional[ExplorationConfig] = None,
                 seed: int = 0) -> None:
        self.actor = actor
        self.exploration = exploration if exploration is not None else ExplorationConfig()
        self._noise = make_noise(self.exploration, np.random.default_rng(seed))

    @property
    def spec(self) -> PolicySpec:
        """Shape of the actor."""
        return self.actor.spec

    def act(self, obs: np.ndarray, goal: np.ndarray, explore: bool) -> np.ndarray:
        """Return actions for one (obs_dim,) or a batch (N, obs_dim) of observations."""
        spec = self.actor.spec
        obs = np.asarray(obs, dtype=np.float32)
        goal = np.asarray(goal, dtype=np.float32)
        shapes_ok = (obs.ndim in (1, 2) and obs.shape[:-1] == goal.shape[:-1]
                     and obs.shape[-1] == spec.obs_dim and goal.shape[-1] == spec.goal_dim)
        if not shapes_ok:
            raise ValueError(f'expected obs (..., {spec.obs_dim}) and goal (..., '
                             f'{spec.goal_dim}) with one leading shape, got {obs.shape} and '
                             f'{goal.shape}')
        if not (np.isfinite(obs).all() and np.isfinite(goal).all()):
            raise ValueError('obs and goal must be finite (found NaN or inf)')
        device = next(self.actor.parameters()).device
        with torch.no_grad():
            inputs = torch.from_numpy(np.concatenate([obs, goal], axis=-1)).to(device)
            action = self.actor(inputs).cpu().numpy()
        if explore:
            action = action + self._noise(action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def reset_noise(self) -> None:
        """Restart the exploration noise process (episode start)."""
        self._noise.reset()
