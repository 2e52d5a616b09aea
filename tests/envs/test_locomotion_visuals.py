"""Locomotion videos show the ground and the motion over it.

Every floor task's floor carries a checker texture under a skybox, and with
the camera tracking the torso, moving the robot by a quarter of a checker
square changes the frame (the floor slides under it). With the earlier
untextured grey floor the two frames were identical.

Rendering runs in a subprocess: MuJoCo binds its OpenGL backend when it is
first imported, and other test modules import it without MUJOCO_GL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mujoco
import pytest

import envs
from envs import base

ROOT = Path(__file__).resolve().parents[2]
TASKS = ["hopper", "half_cheetah", "ant", "humanoid", "swimmer"]


def _model(name: str) -> mujoco.MjModel:
  # the task's own MJCF (cheaper than envs.make, which also builds MJX models)
  return mujoco.MjModel.from_xml_path(
      os.path.join(base.ASSET_DIR, envs.env_class(name).xml_file))


@pytest.mark.parametrize("name", TASKS)
def test_floor_is_textured_under_a_skybox(name):
  m = _model(name)
  floor = m.geom("floor").id
  mat = m.geom_matid[floor]
  assert mat >= 0, "floor has no material"
  tex = m.mat_texid[mat, mujoco.mjtTextureRole.mjTEXROLE_RGB]
  assert tex >= 0 and m.tex_type[tex] == mujoco.mjtTexture.mjTEXTURE_2D
  assert any(m.tex_type[t] == mujoco.mjtTexture.mjTEXTURE_SKYBOX
             for t in range(m.ntex))


_SCRIPT = r"""
import json, sys
from trainlib import startup
st = startup.configure_gl()
if st.backend is None:
  print(json.dumps({"skip": str(st.errors)})); sys.exit(0)
import contextlib, io, os
with contextlib.redirect_stdout(io.StringIO()):
  import envs
  from envs import base
import mujoco
import numpy as np
from configs import RenderConfig
from trainlib import media as render

cfg = RenderConfig(width=96, height=64)
out = {}
for name in sys.argv[1:]:
  m = mujoco.MjModel.from_xml_path(
      os.path.join(base.ASSET_DIR, envs.env_class(name).xml_file))
  root, _ = render.tracked_body(m)
  q = np.stack([m.qpos0, m.qpos0])
  q[1, m.jnt_qposadr[m.body_jntadr[root]]] += 0.125  # the root's x
  frames, _ = render.render_trajectory(m, q, 1 / cfg.fps, cfg)  # both rows
  diff = np.abs(frames[0].astype(int) - frames[1].astype(int)).sum(-1) > 30
  out[name] = float(diff.mean())
print(json.dumps(out))
"""


def test_tracking_camera_shows_the_floor_moving():
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, *TASKS], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  if "skip" in out:
    pytest.skip(f"no headless GL backend here: {out['skip']}")
  for name in TASKS:
    # at least 2% of the pixels change (grid lines and square edges shift)
    assert out[name] > 0.02, f"{name}: {out[name]:.2%} of the frame changed"
