"""Half-cheetah: run forward (SHAC form). Never terminates early.

Reward: forward velocity minus ``0.1 * sum(action^2)``.
Differentiable mode: 8 solver / 3 line-search iterations, the model's own
contacts: the cheapest setting measured whose gradients match finite
differences at resting contact and at reset states (4 / 2, 4 / 4, 6 / 3,
6 / 4 and 8 / 2 did not; see docs/envs.md).
Default mode: up to 8 solver iterations (the base config's 4 leave the
contact solve unconverged: a SHAC policy that runs at 3.4-3.6 m/s with 6, 8
or 50 iterations ran at 1.42 m/s, its episodes between -213 and 3292, with
4; docs/envs.md).
"""

from __future__ import annotations

import dataclasses

from envs import base, locomotion


@dataclasses.dataclass(frozen=True)
class HalfCheetahConfig(locomotion.LocomotionConfig):
  n_frames: int = 5
  timestep: float = 0.01
  iterations: int = 8
  diff_iterations: int = 8
  diff_ls_iterations: int = 3
  reset_noise_scale: float = 0.1
  ctrl_cost_weight: float = 0.1


@base.register
class HalfCheetah(locomotion.LocomotionEnv):
  """``half_cheetah``: obs (17), action (6)."""

  name = "half_cheetah"
  xml_file = "half_cheetah.xml"
  config_cls = HalfCheetahConfig
  planar = True
