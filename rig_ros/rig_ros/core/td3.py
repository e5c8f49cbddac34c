"""Goal-conditioned TD3 (Fujimoto et al. 2018) as RIG uses it: inputs are concat(obs, goal)."""

from collections.abc import Mapping
import copy
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rig_ros.core.actor import Actor, mlp, PolicySpec


@dataclass
class TD3AlgorithmConfig:
    """TD3's own hyper-parameters (networks, optimisers, targets); the defaults are RIG's."""

    hidden_sizes: tuple[int, ...] = (400, 300)
    """Hidden layer widths of the actor and both critics."""
    actor_lr: float = 1e-3
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak factor of the target networks: target <- (1 - tau) * target + tau * online."""
    target_policy_noise: float = 0.2
    """Std of the target policy smoothing noise added to target actions."""
    target_noise_clip: float = 0.5
    """Clip of the target policy smoothing noise: it is clamped to [-clip, clip]."""
    policy_delay: int = 2
    """Critic updates per actor and target update."""

    def __post_init__(self) -> None:
        """Check the values; an error names the field."""
        self.hidden_sizes = tuple(int(size) for size in self.hidden_sizes)
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f'hidden_sizes must be positive widths, got {self.hidden_sizes}')
        for name in ('actor_lr', 'critic_lr', 'policy_delay'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        for name in ('target_policy_noise', 'target_noise_clip'):
            if not getattr(self, name) >= 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f'gamma must be in [0, 1], got {self.gamma}')
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f'tau must be in (0, 1], got {self.tau}')


@dataclass
class UpdateSchedule:
    """How much TD3 trains per transition, and from when: the rule of both hosts."""

    batch_size: int = 128
    """Replay batch size of one update."""
    updates_per_step: int = 4
    """TD3 updates per stored transition."""
    learning_starts: int = 4000
    """Stored transitions before the first update (the pipeline acts randomly until then)."""

    def __post_init__(self) -> None:
        """Check the values; an error names the field."""
        for name in ('batch_size', 'updates_per_step'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if not self.learning_starts >= 0:
            raise ValueError(f'learning_starts must be >= 0, got {self.learning_starts}')

    def updates_due(self, stored: int) -> int:
        """Return the updates owed in all once `stored` transitions were stored.

        From the learning_starts-th transition on (the first, if learning_starts is 0), each
        stored transition owes updates_per_step updates.
        """
        start = max(self.learning_starts, 1)
        return self.updates_per_step * (stored - start + 1) if stored >= start else 0


@dataclass
class TD3Config(UpdateSchedule, TD3AlgorithmConfig):
    """A host's `td3` settings: TD3AlgorithmConfig's fields and UpdateSchedule's, side by side.

    One flat namespace keeps the parameter names of the YAML files and of saved runs
    (`td3.hidden_sizes`, `td3.learning_starts`); `algorithm` and `schedule` give the two
    configs the agent and the trainer take. No field is declared here.
    """

    def __post_init__(self) -> None:
        """Check both parts."""
        TD3AlgorithmConfig.__post_init__(self)
        UpdateSchedule.__post_init__(self)

    @property
    def algorithm(self) -> TD3AlgorithmConfig:
        """The algorithm's part."""
        return _part(self, TD3AlgorithmConfig)

    @property
    def schedule(self) -> UpdateSchedule:
        """The update schedule's part."""
        return _part(self, UpdateSchedule)


def _part(config: Any, part: type) -> Any:
    return part(**{field.name: getattr(config, field.name) for field in fields(part)})


class GoalConditionedTD3:
    """TD3 actor and twin critics over concat(obs, goal); actions lie in [-1, 1].

    Training only: acting goes through `GoalPolicy(agent.actor, ...)` (core.actor), which adds
    the exploration noise. Time limits are not terminations: targets bootstrap everywhere
    unless a batch carries an optional 'done' entry. `seed` seeds the networks' initialisation
    and the target policy noise.
    """

    def __init__(self, obs_dim: int, goal_dim: int, action_dim: int,
                 config: TD3AlgorithmConfig, device: str | torch.device = 'cpu',
                 seed: int = 0) -> None:
        self.obs_dim, self.goal_dim, self.action_dim = obs_dim, goal_dim, action_dim
        self.config = config
        self.device = torch.device(device)
        spec = PolicySpec(obs_dim, goal_dim, action_dim, tuple(config.hidden_sizes))
        in_dim = obs_dim + goal_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actor = Actor(spec).to(self.device)
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
        self._generator = torch.Generator(self.device).manual_seed(seed)

    def target_action(self, next_inputs: torch.Tensor) -> torch.Tensor:
        """Target actor action with clamped Gaussian smoothing noise, clipped to [-1, 1]."""
        config = self.config
        action = self.actor_target(next_inputs)
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
            policy_sa = torch.cat([inputs, self.actor(inputs)], dim=1)
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

    @staticmethod
    def _module_names() -> tuple[str, ...]:
        return ('actor', 'critic1', 'critic2', 'actor_target', 'critic1_target',
                'critic2_target', 'actor_optimizer', 'critic_optimizer')

    def _tensor(self, value: torch.Tensor | np.ndarray) -> torch.Tensor:
        return torch.as_tensor(value, dtype=torch.float32, device=self.device)
