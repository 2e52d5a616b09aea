"""What a run shows: MP4 videos of MuJoCo trajectories and the learning
curve.

Call :func:`trainlib.startup.prepare` before ``mujoco`` is first imported
(``train.py`` and ``evaluate.py`` do); this module then renders with
``mujoco.Renderer`` (settings: ``configs.RenderConfig``) and writes MP4
files with imageio (imageio-ffmpeg ships its own ffmpeg binary).

Camera: when the model's root body can translate (a free or slide joint on a
child of the world body: cart, swimmer, hopper, cheetah, ant, humanoid) the
camera is a ``mjCAMERA_TRACKING`` camera following that body's subtree centre
of mass; otherwise (pendulum, acrobot, reacher) a free camera looks at the
model's centre. A tracked model without a floor (the cart-pole) gets tick
marks every 0.5 m along x added to the scene, so its motion stays visible.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from configs import RenderConfig
from trainlib import startup

__all__ = ["make_camera", "plot_learning_curve", "render_trajectory",
           "tracked_body", "write_video"]


def tracked_body(mj_model) -> tuple[int, bool]:
  """Returns (root body id, whether it can translate).

  The root body is the first child of the world body that carries joints (or
  the first child at all). It "can translate" when it has a free or slide
  joint.
  """
  import mujoco  # pylint: disable=import-outside-toplevel
  roots = [b for b in range(1, mj_model.nbody) if mj_model.body_parentid[b] == 0]
  if not roots:
    return 0, False
  with_joints = [b for b in roots if mj_model.body_jntnum[b] > 0]
  root = (with_joints or roots)[0]
  start, num = mj_model.body_jntadr[root], mj_model.body_jntnum[root]
  types = mj_model.jnt_type[start:start + num]
  moving = bool(np.any((types == mujoco.mjtJoint.mjJNT_FREE)
                       | (types == mujoco.mjtJoint.mjJNT_SLIDE)))
  return int(root), moving


def make_camera(mj_model, config: RenderConfig):
  """Builds the ``mujoco.MjvCamera`` used for every frame.

  Args:
    mj_model: the host ``mujoco.MjModel``.
    config: render settings.

  Returns:
    A tracking camera (type mjCAMERA_TRACKING, trackbodyid = root body) when
    the root body can translate, else a free camera aimed at the model centre.
  """
  import mujoco  # pylint: disable=import-outside-toplevel
  cam = mujoco.MjvCamera()
  root, moving = tracked_body(mj_model)
  track = config.track == "body" or (config.track == "auto" and moving)
  extent = float(mj_model.stat.extent)
  cam.distance = config.distance if config.distance > 0 else 2.0 * extent
  cam.elevation = config.elevation
  cam.azimuth = config.azimuth
  cam.lookat[:] = mj_model.stat.center
  if track and root > 0:
    cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    cam.trackbodyid = root
    cam.fixedcamid = -1
  else:
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
  return cam


def _has_floor(mj_model) -> bool:
  import mujoco  # pylint: disable=import-outside-toplevel
  return bool(np.any(mj_model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE))


def _add_ground_marks(scene, z: float, x_center: float) -> None:
  """Adds tick marks every 0.5 m along x (for floorless models with a
  tracking camera, which would otherwise hide the robot's motion)."""
  import mujoco  # pylint: disable=import-outside-toplevel
  start = np.floor(x_center / 0.5) * 0.5
  for x in start + 0.5 * np.arange(-12, 13):
    if scene.ngeom >= scene.maxgeom:
      return
    major = abs(x - round(x)) < 1e-6
    mujoco.mjv_initGeom(
        scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_BOX,
        np.array([0.01, 0.25 if major else 0.12, 0.01]),
        np.array([x, 0.0, z]), np.eye(3).ravel(),
        np.array([0.8, 0.8, 0.8, 1.0] if major else [0.5, 0.5, 0.5, 1.0],
                 np.float32))
    scene.ngeom += 1


def _renderer(mj_model, width: int, height: int):
  """Creates a ``mujoco.Renderer`` or raises RenderingUnavailableError."""
  st = startup.gl_status()
  if st is not None and st.backend is None:
    st.require()
  import mujoco  # pylint: disable=import-outside-toplevel
  # The offscreen buffer must be at least as large as the frame.
  mj_model.vis.global_.offwidth = max(mj_model.vis.global_.offwidth, width)
  mj_model.vis.global_.offheight = max(mj_model.vis.global_.offheight, height)
  try:
    return mujoco.Renderer(mj_model, height=height, width=width)
  except Exception as e:  # pylint: disable=broad-except
    raise startup.RenderingUnavailableError(
        f"mujoco.Renderer failed with MUJOCO_GL="
        f"{os.environ.get('MUJOCO_GL', '<unset>')!r}: "
        f"{type(e).__name__}: {e}. {startup.INSTALL_HINT}") from e


def render_trajectory(mj_model, qpos: np.ndarray, dt: float,
                      config: RenderConfig = RenderConfig(),
                      qvel: np.ndarray | None = None
                      ) -> tuple[np.ndarray, float]:
  """Renders a joint-position trajectory in real time.

  Args:
    mj_model: the host ``mujoco.MjModel`` that produced the trajectory (it is
      not modified apart from enlarging its offscreen buffer if needed).
    qpos: [T, nq] joint positions, one row per control step.
    dt: seconds between rows of ``qpos``.
    config: render settings; rows are subsampled to about ``config.fps``.
    qvel: optional [T, nv] joint velocities (only affects velocity-dependent
      visuals; positions alone determine the pose).

  Returns:
    ``(frames, fps)``: uint8 frames ``[F, height, width, 3]`` and the frame
    rate that plays them in real time (``1 / (stride * dt)``, close to
    ``config.fps``).

  Raises:
    ValueError: qpos has the wrong shape.
    RenderingUnavailableError: no working OpenGL backend (message says what to
      install).
  """
  import mujoco  # pylint: disable=import-outside-toplevel
  qpos = np.asarray(qpos)
  if qpos.ndim != 2 or qpos.shape[1] != mj_model.nq:
    raise ValueError(f"qpos must be [T, nq={mj_model.nq}], got {qpos.shape}")
  stride = max(1, int(round(1.0 / (config.fps * dt))))
  rows = range(0, qpos.shape[0], stride)
  data = mujoco.MjData(mj_model)
  cam = make_camera(mj_model, config)
  marks_z = None
  if cam.type == mujoco.mjtCamera.mjCAMERA_TRACKING and not _has_floor(mj_model):
    data.qpos[:] = qpos[0]
    mujoco.mj_forward(mj_model, data)
    marks_z = float(np.min(data.geom_xpos[:, 2])) - 0.15
  frames = np.empty((len(rows), config.height, config.width, 3), np.uint8)
  with _renderer(mj_model, config.width, config.height) as renderer:
    if not config.shadows:
      renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
      renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    for i, t in enumerate(rows):
      data.qpos[:] = qpos[t]
      if qvel is not None:
        data.qvel[:] = qvel[t]
      mujoco.mj_forward(mj_model, data)
      renderer.update_scene(data, camera=cam)
      if marks_z is not None:
        _add_ground_marks(renderer.scene, marks_z,
                          float(data.subtree_com[cam.trackbodyid, 0]))
      frames[i] = renderer.render()
  return frames, 1.0 / (stride * dt)


def write_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
  """Writes [F, H, W, 3] uint8 frames to an H.264 MP4 file.

  The file is written to a temporary name and renamed, so a killed process
  never leaves a truncated video behind.
  """
  import imageio.v2 as imageio  # pylint: disable=import-outside-toplevel
  path = Path(path)
  tmp = path.with_name(path.stem + ".tmp" + path.suffix)
  with warnings.catch_warnings():
    # imageio-ffmpeg starts ffmpeg with subprocess; JAX warns about any fork.
    warnings.filterwarnings("ignore", message=".*os.fork.*")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7,
                            macro_block_size=16, ffmpeg_log_level="error",
                            format="FFMPEG") as writer:
      for frame in frames:
        writer.append_data(frame)
  tmp.replace(path)
  return path


RETURN_KEYS = ("train/episode_return", "eval/episode_return")
# Plotted only when no episode finished yet (short runs).
FALLBACK_KEYS = ("train/episode_return_estimate",)


def plot_learning_curve(rows: list[Mapping[str, Any]], path: Path,
                        title: str) -> Path | None:
  """Plots episode return against env steps (Agg backend, atomic write),
  and, when the rows have them, a second panel with the actor's gradient
  norm (window mean and max, before clipping; log scale) and the updates
  skipped for NaN/inf gradients in each window.

  Returns:
    ``path``, or None when no row has a return to plot.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  def points(key):
    return [(float(r["env_steps"]), float(r[key])) for r in rows
            if isinstance(r.get(key), float) and math.isfinite(r[key])]

  keys = [k for k in RETURN_KEYS if points(k)] or [k for k in FALLBACK_KEYS
                                                   if points(k)]
  if not keys:
    return None
  norms = [k for k in ("train/grad_norm", "train/grad_norm_max") if points(k)]
  fig, axes = plt.subplots(2 if norms else 1, 1, figsize=(6, 6.5 if norms else 4),
                           dpi=100, sharex=True, squeeze=False)
  ax = axes[0, 0]
  for key in keys:
    xs, ys = zip(*points(key))
    ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=key)
  ax.set_ylabel("episode return")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  if norms:
    ax2 = axes[1, 0]
    for key in norms:
      xs, ys = zip(*points(key))
      ax2.plot(xs, np.maximum(ys, 1e-12), label=key)
    ax2.set_yscale("log")
    ax2.set_ylabel("actor gradient norm")
    ax2.grid(alpha=0.3)
    skipped = [p for p in points("train/skipped_in_window") if p[1] > 0]
    if skipped:
      ax3 = ax2.twinx()
      xs, ys = zip(*skipped)
      ax3.bar(xs, ys, width=max(xs) / 100, color="C3", alpha=0.5,
              label="skipped (NaN/inf) updates")
      ax3.set_ylabel("skipped updates per window")
      ax3.legend(loc="lower right")
    ax2.legend(loc="upper left")
  axes[-1, 0].set_xlabel("env steps")
  fig.tight_layout()
  tmp = path.with_name(path.stem + ".tmp.png")
  fig.savefig(tmp)
  plt.close(fig)
  os.replace(tmp, path)
  return path
