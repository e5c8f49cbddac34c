"""The learner on a CUDA device, as docs/fleet.md's GPU learner machine runs it (no ROS).

A GPU learner serves CPU processes: its weights, VAE and checkpoints must reach them unchanged,
and a run must move between CPU and GPU machines. Skipped where torch sees no CUDA device
(the project's CPU machines); docs/results.md says where and when it last ran on one.
"""

import dataclasses

from factories import episode, make_learner
import numpy as np
import pytest
from test_learner_core import train_all
from test_practice_run import explore, make_config, versioned, work_until
import torch

from rig_ros.core.policy_runtime import decode_policy_weights
from rig_ros.core.practice_run import PracticeRun
from rig_ros.core.vae import encode_images
from rig_ros.core.vae_training import read_vae_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')


def on(module: torch.nn.Module) -> str:
    """Return the device type of a module's parameters."""
    return next(module.parameters()).device.type


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu() for key, value in module.state_dict().items()}


def test_a_cuda_run_explores_pretrains_practises_fine_tunes_and_moves_to_a_cpu(tmp_path):
    config = make_config(tmp_path, device='cuda', fine_tune_vae_every=30, fine_tune_vae_steps=3)
    run = PracticeRun(config)
    run.resume()
    explore(run)
    work_until(run, 'vae')
    assert on(run.vae) == 'cuda' and on(run.learner.agent.actor) == 'cuda'
    for record in versioned(episode(1, 4), 1):
        run.ingest('robot_0', record)
    for _ in range(100):  # bounded: each work() pays a slice of the owed updates
        if not run.work().busy or run.learner.updates >= 12:
            break
    assert run.learner.updates >= 12

    # The broadcast weights are CPU tensors equal to the GPU actor's.
    _, _, data = run.learner.policy_weights()
    state, _ = decode_policy_weights(data)
    actor = run.learner.agent.actor.detached_state_dict()
    assert all(state[key].device.type == 'cpu' for key in state)
    for key, value in actor.items():
        assert torch.equal(state[key], value.cpu()), key

    # A fine-tuning round on the GPU re-encodes the replay; the file encodes alike on a CPU.
    assert run.fine_tune().version == 2
    frames = np.random.default_rng(5).integers(0, 256, (16, 48, 48, 3), dtype=np.uint8)
    cpu_vae, version = read_vae_checkpoint(tmp_path)
    assert version == 2 and on(cpu_vae) == 'cpu'
    np.testing.assert_allclose(encode_images(cpu_vae, frames)[0],
                               encode_images(run.vae, frames)[0], atol=1e-4)

    # The run checkpointed on the GPU resumes on a CPU machine: networks, optimiser, replay.
    assert run.save() is not None
    moved = PracticeRun(dataclasses.replace(config, device='cpu'))
    assert 'VAE version 2' in moved.resume()
    assert on(moved.learner.agent.critic1) == 'cpu' and on(moved.vae) == 'cpu'
    assert moved.learner.updates == run.learner.updates
    for name in ('actor', 'critic1', 'critic2'):
        saved, restored = (cpu_state(getattr(r.learner.agent, name)) for r in (run, moved))
        for key in saved:
            assert torch.equal(saved[key], restored[key]), (name, key)
    stored = run.learner.counts['stored']
    assert moved.learner.counts['stored'] == stored
    # The CPU re-encodes the replay with the file's VAE: the GPU's latents to float rounding.
    np.testing.assert_allclose(moved.learner.buffer._obs[:stored],
                               run.learner.buffer._obs[:stored], atol=1e-5)
    for record in versioned(episode(2, 3), 2):
        moved.ingest('robot_0', record)
    before = moved.learner.updates
    moved.work()
    assert moved.learner.updates > before


def test_a_cpu_learners_checkpoint_resumes_on_the_gpu_with_its_optimiser(tmp_path):
    learner = make_learner(updates_per_step=2)
    for record in episode(0, 12):
        learner.ingest('r', record)
    assert train_all(learner) > 0
    learner.save(tmp_path)
    gpu = make_learner(updates_per_step=2, device='cuda')
    assert gpu.resume(tmp_path) and gpu.updates == learner.updates
    moments = gpu.agent.critic_optimizer.state_dict()['state']
    assert moments and all(state['exp_avg'].device.type == 'cuda' for state in moments.values())
    for record in episode(1, 3):
        gpu.ingest('r', record)
    assert gpu.train(100) > 0 and on(gpu.agent.critic1) == 'cuda'
    inputs = torch.zeros(1, 8, device='cuda')  # observation and goal, 4 latents each
    assert torch.isfinite(gpu.agent.actor(inputs)).all()
