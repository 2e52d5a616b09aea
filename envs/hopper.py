"""Hopper: hop forward on one leg without falling (SHAC form).

Terminates when the torso drops below 0.7 m or tilts past 60 degrees.
Differentiable mode: 3 solver / 2 line-search iterations, the model's own contacts
(measured choice, see docs/envs.md).
"""

from __future__ import annotations

import dataclasses

from envs import base, locomotion


@dataclasses.dataclass(frozen=True)
class HopperConfig(locomotion.LocomotionConfig):
  n_frames: int = 2
  timestep: float = 0.004
  diff_iterations: int = 3
  diff_ls_iterations: int = 2
  reset_noise_scale: float = 0.005
  ctrl_cost_weight: float = 1e-3
  height_weight: float = 1.0
  upright_weight: float = 1.0
  termination_height: float | None = 0.7
  min_upright: float = 0.5


@base.register
class Hopper(locomotion.LocomotionEnv):
  """``hopper``: obs (11), action (3)."""

  name = "hopper"
  xml_file = "hopper.xml"
  config_cls = HopperConfig
  planar = True
