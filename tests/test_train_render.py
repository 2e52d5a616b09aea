"""Headless rendering: every task's robot is in the frame, the camera tracks.

Rendering runs in a subprocess: MuJoCo binds its OpenGL backend when it is
first imported, and other test modules import it without MUJOCO_GL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainlib import startup

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import json, sys
from trainlib import startup
st = startup.configure_gl()
if st.backend is None:
  print(json.dumps({"skip": str(st.errors)})); sys.exit(0)
startup.import_mjx_quietly()
import envs
import mujoco
import numpy as np
from configs import RenderConfig
from trainlib import media as render

def robot_fraction(m, qpos, cfg):
  # fraction of pixels that change when every non-world geom is hidden
  frames, _ = render.render_trajectory(m, qpos[None], 0.01, cfg)
  rgba = m.geom_rgba.copy()
  m.geom_rgba[m.geom_bodyid > 0, 3] = 0.0
  try:
    empty, _ = render.render_trajectory(m, qpos[None], 0.01, cfg)
  finally:
    m.geom_rgba[:] = rgba
  diff = np.abs(frames[0].astype(int) - empty[0].astype(int)).sum(-1) > 30
  return float(diff.mean()), float(frames[0].std())

out = {"backend": st.backend, "envs": {}}
cfg = RenderConfig(width=96, height=64)
import os
from envs import base
for name in envs.names():
  cls = envs.env_class(name)
  # the task's own MJCF (cheaper than envs.make, which also builds MJX models)
  m = mujoco.MjModel.from_xml_path(os.path.join(base.ASSET_DIR, cls.xml_file))
  root, moving = render.tracked_body(m)
  frac, std = robot_fraction(m, m.qpos0.copy(), cfg)
  res = {"fraction": frac, "std": std, "moving": moving}
  if moving:
    # move the root body 8 m along x: a tracking camera keeps it in view
    q = m.qpos0.copy()
    jnt = m.body_jntadr[root]
    q[m.jnt_qposadr[jnt]] += 8.0
    res["fraction_moved"] = robot_fraction(m, q, cfg)[0]
    res["fraction_moved_fixed_camera"] = robot_fraction(
        m, q, RenderConfig(width=96, height=64, track="fixed"))[0]
  out["envs"][name] = res
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def rendered():
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  if "skip" in out:
    pytest.skip(f"no headless GL backend here: {out['skip']}")
  return out


def test_every_robot_is_visible(rendered):
  assert len(rendered["envs"]) == 10
  for name, res in rendered["envs"].items():
    assert res["std"] > 5.0, f"{name}: blank frame"
    # >= 0.4% of a 96x64 frame (25 pixels): thin rods at 96x64 are small
    assert res["fraction"] > 0.004, f"{name}: robot covers {res['fraction']:.2%}"


def test_camera_tracks_moving_robots(rendered):
  moving = {n: r for n, r in rendered["envs"].items() if r["moving"]}
  # the cart, swimmer and the locomotion robots all translate
  assert {"cartpole_swingup", "swimmer", "hopper", "half_cheetah", "ant",
          "humanoid"} <= set(moving)
  assert not rendered["envs"]["pendulum_swingup"]["moving"]
  for name, res in moving.items():
    assert res["fraction_moved"] > 0.004, f"{name}: lost the robot"
    # a fixed camera loses it, so the check above can fail
    assert res["fraction_moved_fixed_camera"] < res["fraction_moved"], name


def test_missing_backend_error_says_what_to_install():
  err = startup._probe("not-a-backend")  # pylint: disable=protected-access
  assert err is not None
  status = startup.GLStatus(backend=None, chosen_by="none",
                             errors={"egl": "x", "osmesa": err})
  with pytest.raises(startup.RenderingUnavailableError) as e:
    status.require()
  assert "apt-get install" in str(e.value) and "libosmesa6" in str(e.value)
  assert "libegl1" in str(e.value) and "--no-video" in str(e.value)
