"""Goal-conditioned TD3 (Fujimoto et al. 2018) as RIG uses it: inputs are concat(obs, goal)."""

from collections.abc import Mapping
import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from rig_ros.core.noise import GaussianNoise, OrnsteinUhlenbeckNoise

EXPLORATION_KINDS = ('ou', 'gaussian')


@dataclass
class TD3Config:
    """TD3 hyper-parameters; the defaults are RIG's."""

    hidden_sizes: tuple[int, ...] = (400, 300)
    """Hidden layer widths shared by the actor and both critics."""
    actor_lr: float = 1e-3
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-3
    """Adam learning rate of the twin critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak factor: target <- (1 - tau) * target + tau * online."""
    target_policy_noise: float = 0.2
    """Std of the Gaussian noise added to target actions (target policy smoothing)."""
    target_noise_clip: float = 0.5
    """Target policy noise is clamped to [-clip, clip]."""
    policy_delay: int = 2
    """Actor and target networks are updated once every this many critic updates."""
    batch_size: int = 128
    """Replay batch size of one update (used by the learner loop)."""
    exploration: str = 'ou'
    """Exploration noise in act(explore=True): 'ou' (Ornstein-Uhlenbeck) or 'gaussian'."""
    exploration_sigma: float = 0.2
    """Scale of the exploration noise, in normalised action units."""
    ou_theta: float = 0.15
    """Mean reversion of the Ornstein-Uhlenbeck process."""
    updates_per_step: int = 4
    """Gradient updates per environment step (used by the learner loop)."""
    learning_starts: int = 4000
    """Environment steps collected before the first update (used by the learner loop)."""
    seed: int = 0
    """Seeds network initialisation, target policy noise and exploration noise."""

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(size) for size in self.hidden_sizes)
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f'hidden_sizes must be positive widths, got {self.hidden_sizes}')
        positive = ('actor_lr', 'critic_lr', 'policy_delay', 'batch_size', 'updates_per_step')
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        non_negative = ('target_policy_noise', 'target_noise_clip', 'exploration_sigma',
                        'learning_starts')
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f'gamma must be in [0, 1], got {self.gamma}')
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f'tau must be in (0, 1], got {self.tau}')
        if not 0.0 < self.ou_theta <= 1.0:
            raise ValueError(f'ou_theta must be in (0, 1], got {self.ou_theta}')
        if self.exploration not in EXPLORATION_KINDS:
            raise ValueError(
                f'exploration must be one of {EXPLORATION_KINDS}, got {self.exploration!r}')


def mlp(in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """Build a ReLU MLP whose last layer starts near zero (small initial Q and actions)."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    last = nn.Linear(in_dim, out_dim)
    nn.init.uniform_(last.weight, -3e-3, 3e-3)
    nn.init.uniform_(last.bias, -3e-3, 3e-3)
    return nn.Sequential(*layers, last)


class GoalConditionedTD3:
    """TD3 actor and twin critics over concat(obs, goal); actions lie in [-1, 1].

    Time limits are not terminations: targets bootstrap everywhere unless a batch carries an
    optional 'done' entry.
    """

    def __init__(self, obs_dim: int, goal_dim: int, action_dim: int, config: TD3Config,
                 device: str | torch.device = 'cpu') -> None:
        self.obs_dim, self.goal_dim, self.action_dim = obs_dim, goal_dim, action_dim
        self.config = config
        self.device = torch.device(device)
        in_dim = obs_dim + goal_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.actor = mlp(in_dim, config.hidden_sizes, action_dim).to(self.device)
            self.critic1 = mlp(in_dim + action_dim, config.hidden_sizes, 1).to(self.device)
            self.critic2 = mlp(in_dim + action_dim, config.hidden_sizes, 1).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic1_target = copy.deepcopy(self.critic1).requires_grad_(False)
        self.critic2_target = copy.deepcopy(self.critic2).requires_grad_(False)
        self._actor_params = list(self.actor.parameters())
        self._critic_params = [*self.critic1.parameters(), *self.critic2.parameters()]
        self._online_params = self._actor_params + self._critic_params
        self._target_params = [*self.actor_target.parameters(),
                               *self.critic1_target.parameters(),
                               *self.critic2_target.parameters()]
        # Fused Adam is the fastest step on both CPU and CUDA.
        self.actor_optimizer = torch.optim.Adam(self._actor_params, config.actor_lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self._critic_params, config.critic_lr,
                                                 fused=True)
        self.updates = 0
        self._generator = torch.Generator(self.device).manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        if config.exploration == 'ou':
            self._noise = OrnsteinUhlenbeckNoise(config.exploration_sigma, config.ou_theta, rng)
        else:
            self._noise = GaussianNoise(config.exploration_sigma, rng)

    def act(self, obs: np.ndarray, goal: np.ndarray, explore: bool) -> np.ndarray:
        """Return actions for one (obs_dim,) or a batch (N, obs_dim) of observations.

        With explore=True the stateful exploration noise is added (call reset_noise() at every
        episode start); the result is clipped to [-1, 1].
        """
        obs = np.asarray(obs, dtype=np.float32)
        goal = np.asarray(goal, dtype=np.float32)
        shapes_ok = (obs.ndim in (1, 2) and obs.shape[:-1] == goal.shape[:-1]
                     and obs.shape[-1] == self.obs_dim and goal.shape[-1] == self.goal_dim)
        if not shapes_ok:
            raise ValueError(f'expected obs (..., {self.obs_dim}) and goal (..., '
                             f'{self.goal_dim}) with one leading shape, got {obs.shape} and '
                             f'{goal.shape}')
        if not (np.isfinite(obs).all() and np.isfinite(goal).all()):
            raise ValueError('obs and goal must be finite (found NaN or inf)')
        with torch.no_grad():
            inputs = torch.from_numpy(np.concatenate([obs, goal], axis=-1)).to(self.device)
            action = torch.tanh(self.actor(inputs)).cpu().numpy()
        if explore:
            action = action + self._noise(action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def reset_noise(self) -> None:
        """Restart the exploration noise process (episode start)."""
        self._noise.reset()

    def target_action(self, next_inputs: torch.Tensor) -> torch.Tensor:
        """Target actor action with clamped Gaussian smoothing noise, clipped to [-1, 1]."""
        config = self.config
        action = torch.tanh(self.actor_target(next_inputs))
        noise = torch.randn(action.shape, generator=self._generator, device=self.device)
        noise = (noise * config.target_policy_noise).clamp_(-config.target_noise_clip,
                                                            config.target_noise_clip)
        return (action + noise).clamp_(-1.0, 1.0)

    def update(self, batch: Mapping[str, torch.Tensor | np.ndarray]) -> dict[str, float]:
        """Take a critic step; every policy_delay-th call also steps the actor and targets.

        The batch holds obs, action, next_obs, goal and reward (float, leading batch axis),
        optionally done (1 where the episode truly terminated).
        """
        obs, action, next_obs, goal, reward = (
            self._tensor(batch[key]) for key in ('obs', 'action', 'next_obs', 'goal', 'reward'))
        reward = reward.reshape(-1, 1)
        inputs = torch.cat([obs, goal], dim=1)
        next_inputs = torch.cat([next_obs, goal], dim=1)
        config = self.config
        with torch.no_grad():
            next_sa = torch.cat([next_inputs, self.target_action(next_inputs)], dim=1)
            next_q = torch.min(self.critic1_target(next_sa), self.critic2_target(next_sa))
            if 'done' in batch:
                next_q = next_q * (1.0 - self._tensor(batch['done']).reshape(-1, 1))
            target_q = reward + config.gamma * next_q
        sa = torch.cat([inputs, action], dim=1)
        q1 = self.critic1(sa)
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(self.critic2(sa), target_q)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        self.updates += 1
        metrics = {'critic_loss': critic_loss.item(), 'q_mean': q1.mean().item()}
        if self.updates % config.policy_delay == 0:
            policy_sa = torch.cat([inputs, torch.tanh(self.actor(inputs))], dim=1)
            actor_loss = -self.critic1(policy_sa).mean()
            # Gradients w.r.t. the actor only: no wasted critic weight gradients.
            grads = torch.autograd.grad(actor_loss, self._actor_params)
            for param, grad in zip(self._actor_params, grads):
                param.grad = grad
            self.actor_optimizer.step()
            with torch.no_grad():
                torch._foreach_lerp_(self._target_params, self._online_params, config.tau)
            metrics['actor_loss'] = actor_loss.item()
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Return networks, targets and optimizers as state dicts plus the update counter."""
        state: dict[str, Any] = {name: getattr(self, name).state_dict()
                                 for name in self._module_names()}
        state['updates'] = self.updates
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what state_dict() returned."""
        for name in self._module_names():
            getattr(self, name).load_state_dict(state[name])
        self.updates = int(state['updates'])

    def actor_state_dict(self) -> dict[str, torch.Tensor]:
        """Return the policy weights alone, for broadcasting to acting processes."""
        return {name: value.detach().cpu().clone()
                for name, value in self.actor.state_dict().items()}

    def load_actor_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load broadcast policy weights (an acting-only copy needs nothing else)."""
        self.actor.load_state_dict(state)

    @staticmethod
    def _module_names() -> tuple[str, ...]:
        return ('actor', 'critic1', 'critic2', 'actor_target', 'critic1_target',
                'critic2_target', 'actor_optimizer', 'critic_optimizer')

    def _tensor(self, value: torch.Tensor | np.ndarray) -> torch.Tensor:
        return torch.as_tensor(value, dtype=torch.float32, device=self.device)
