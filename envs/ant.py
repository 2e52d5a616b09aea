"""Ant: walk forward (+x) on four legs (SHAC form).

Terminates when the torso centre drops below 0.25 m.
Differentiable mode: 6 solver / 3 line-search iterations, the model's own
contacts: the cheapest setting measured whose gradients match finite
differences at resting contact and at reset states (3 / 2, 4 / 4 and 5 / 3
did not; see docs/envs.md).
"""

from __future__ import annotations

import dataclasses

from envs import base, locomotion


@dataclasses.dataclass(frozen=True)
class AntConfig(locomotion.LocomotionConfig):
  n_frames: int = 5
  timestep: float = 0.01
  diff_iterations: int = 6
  diff_ls_iterations: int = 3
  reset_noise_scale: float = 0.1
  ctrl_cost_weight: float = 0.01
  height_weight: float = 1.0
  upright_weight: float = 0.1
  termination_height: float | None = 0.25


@base.register
class Ant(locomotion.LocomotionEnv):
  """``ant``: obs (27), action (8)."""

  name = "ant"
  xml_file = "ant.xml"
  config_cls = AntConfig
  planar = False
