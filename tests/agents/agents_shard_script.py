"""Runs a few SHAC updates on the toy env and saves the policy leaves.

Usage: python agents_shard_script.py OUT.npz   (set XLA_FLAGS for devices)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from agents import shac  # noqa: E402
from agents_toy_env import ToyPendulum  # noqa: E402

config = shac.Config(num_timesteps=4 * 8 * 8, num_envs=8, horizon=8, critic_epochs=2,
                     critic_minibatches=2, policy_hidden_sizes=(16,),
                     critic_hidden_sizes=(16,), log_every=1)
pp, metrics = shac.train(ToyPendulum(episode_length=20), config, jax.random.PRNGKey(3))
leaves = jax.tree.leaves(jax.device_get((pp.network, pp.normalizer)))
np.savez(sys.argv[1], *leaves, devices=len(jax.devices()),
         actor_loss=metrics["train/actor_loss"])
