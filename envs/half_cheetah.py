"""Half-cheetah: run forward (SHAC form). Never terminates early.

Reward: forward velocity minus ``0.1 * sum(action^2)``.
Differentiable mode: 4 solver / 2 line-search iterations, the model's own contacts
(measured choice, see docs/envs.md).
"""

from __future__ import annotations

import dataclasses

from envs import base, locomotion


@dataclasses.dataclass(frozen=True)
class HalfCheetahConfig(locomotion.LocomotionConfig):
  n_frames: int = 5
  timestep: float = 0.01
  diff_iterations: int = 4
  diff_ls_iterations: int = 2
  reset_noise_scale: float = 0.1
  ctrl_cost_weight: float = 0.1


@base.register
class HalfCheetah(locomotion.LocomotionEnv):
  """``half_cheetah``: obs (17), action (6)."""

  name = "half_cheetah"
  xml_file = "half_cheetah.xml"
  config_cls = HalfCheetahConfig
  planar = True
