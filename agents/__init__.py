"""Agents that backpropagate through differentiable MJX rollouts.

Shared pieces live here once:
  agents.rollout     vmapped + scanned rollout with auto-reset (APG, SHAC, eval)
  agents.networks    ELU+LayerNorm MLPs, tanh-Gaussian policy, value net,
                     PolicyParams / make_policy
  agents.normalizer  running observation normaliser
  agents.optim       clip + Adam + linear decay; NaN/inf-skipping update
  agents.loop        outer loop: device mesh, compile, logging, checkpoints
  agents.checkpoint  save_policy / load_policy
Algorithms: agents.apg, agents.shac.
"""
