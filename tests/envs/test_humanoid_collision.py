"""The humanoid's collision model: a fallen body rests on the floor.

C MuJoCo only (no JAX compile): the env's host model (``env.mj_model``, default
mode's solver settings) is settled at zero control from standing and from
lying poses, and must end at rest on the floor, with nothing sunk into it.
With the earlier model (only shins and feet collided) the standing start ends
with the torso 0.8 m below the floor.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from mujoco import mjx

import envs

# Bodies lie on the floor by then (the standing humanoid's upper body first
# touches the floor at step 304 of 5 ms).
SETTLE_STEPS = 1000
# A geom may sink this far into the floor (soft contacts, and the thighs,
# upper arms and hands that do not collide but lie between geoms that do).
MAX_PENETRATION = 0.03
# Candidate contacts MJX evaluates every step (its cost scales with them).
CANDIDATE_CONTACTS = 17


@pytest.fixture(scope="module")
def mj_model():
  return envs.make("humanoid").mj_model


def _lowest_point(m: mujoco.MjModel, d: mujoco.MjData, i: int) -> float:
  """World z of the lowest surface point of sphere or capsule geom ``i``."""
  z = d.geom_xpos[i, 2] - m.geom_size[i, 0]
  if m.geom_type[i] == mujoco.mjtGeom.mjGEOM_CAPSULE:
    z -= abs(d.geom_xmat[i, 8]) * m.geom_size[i, 1]  # axis z * half-length
  return float(z)


def _start(m: mujoco.MjModel, pose: str) -> mujoco.MjData:
  d = mujoco.MjData(m)
  if pose != "standing":  # drop the straight body from 0.6 m, rotated
    axis, angle = {"back": ([0, 1, 0], -90), "front": ([0, 1, 0], 90),
                   "side": ([1, 0, 0], 90)}[pose]
    d.qpos[2] = 0.6
    mujoco.mju_axisAngle2Quat(d.qpos[3:7], np.array(axis, float),
                              np.deg2rad(angle))
  return d


@pytest.mark.parametrize("pose", ["standing", "back", "front", "side"])
def test_fallen_humanoid_rests_on_the_floor(mj_model, pose):
  m = mj_model
  d = _start(m, pose)
  for _ in range(SETTLE_STEPS):
    mujoco.mj_step(m, d)
  mujoco.mj_forward(m, d)
  head = m.geom("head").id
  torso = m.body("torso").id
  # lying, not sunk: the chest's radius is 0.075 m, the head's 0.09 m
  assert d.xpos[torso, 2] > 0.05, d.xpos[torso, 2]
  assert d.geom_xpos[head, 2] > 0.05, d.geom_xpos[head, 2]
  assert d.ncon >= 3, d.ncon
  lowest = {m.geom(i).name: _lowest_point(m, d, i) for i in range(m.ngeom)
            if m.geom_type[i] != mujoco.mjtGeom.mjGEOM_PLANE}
  deepest = min(lowest, key=lowest.get)
  assert lowest[deepest] > -MAX_PENETRATION, (deepest, lowest[deepest])
  # at rest
  assert np.abs(d.qvel).max() < 0.5, np.abs(d.qvel).max()


def test_collision_filter_is_body_floor_only(mj_model):
  m = mj_model
  floor = m.geom("floor").id
  body = [i for i in range(m.ngeom) if i != floor]
  for i in body:  # no geom pair of the body can collide with itself
    for j in body:
      assert not (m.geom_contype[i] & m.geom_conaffinity[j]), (
          m.geom(i).name, m.geom(j).name)
  colliding = {m.geom(i).name for i in body
               if m.geom_contype[i] & m.geom_conaffinity[floor]}
  assert colliding == {"chest", "head", "lower_waist", "pelvis",
                       "right_lower_arm", "left_lower_arm", "right_shin",
                       "left_shin", "right_foot", "left_foot"}
  assert m.npair == 0 and m.nexclude == 0
  assert mjx.make_data(m)._impl.ncon == CANDIDATE_CONTACTS
