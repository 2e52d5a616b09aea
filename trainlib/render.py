"""Offscreen rendering of MuJoCo trajectories into MP4 videos.

Call :func:`trainlib.headless.configure` before ``mujoco`` is first imported
(``train.py`` and ``evaluate.py`` do); this module then renders with
``mujoco.Renderer`` and writes MP4 files with imageio (imageio-ffmpeg ships its
own ffmpeg binary).

Camera: when the model's root body can translate (a free or slide joint on a
child of the world body: cart, swimmer, hopper, cheetah, ant, humanoid) the
camera is a ``mjCAMERA_TRACKING`` camera following that body's subtree centre
of mass; otherwise (pendulum, acrobot, reacher) a free camera looks at the
model's centre. A tracked model without a floor (the cart-pole) gets tick
marks every 0.5 m along x added to the scene, so its motion stays visible.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from trainlib import headless

__all__ = ["RenderConfig", "make_camera", "render_trajectory", "write_video",
           "tracked_body"]


@dataclasses.dataclass(frozen=True)
class RenderConfig:
  """How evaluation videos are rendered.

  Attributes:
    width: frame width in pixels (a multiple of 16 avoids resizing).
    height: frame height in pixels (a multiple of 16 avoids resizing).
    fps: video frame rate; simulation states are subsampled to match it.
    distance: camera distance in metres; 0 picks 2 x the model's extent.
    elevation: camera elevation in degrees (negative looks down).
    azimuth: camera azimuth in degrees.
    track: "auto" tracks the root body when it can translate, "body" always
      tracks the root body, "fixed" never tracks.
    shadows: render shadows and reflections (about 10x slower with the
      software rasteriser used on CPU-only machines).
  """
  width: int = 320
  height: int = 240
  fps: int = 30
  distance: float = 0.0
  elevation: float = -20.0
  azimuth: float = 90.0
  track: Literal["auto", "body", "fixed"] = "auto"
  shadows: bool = False

  def __post_init__(self):
    if self.track not in ("auto", "body", "fixed"):
      raise ValueError(f"render.track must be one of 'auto', 'body', 'fixed'; "
                       f"got {self.track!r}")
    if self.width <= 0 or self.height <= 0 or self.fps <= 0:
      raise ValueError("render.width, render.height and render.fps must be > 0")


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
  st = headless.status()
  if st is not None and st.backend is None:
    st.require()
  import mujoco  # pylint: disable=import-outside-toplevel
  # The offscreen buffer must be at least as large as the frame.
  mj_model.vis.global_.offwidth = max(mj_model.vis.global_.offwidth, width)
  mj_model.vis.global_.offheight = max(mj_model.vis.global_.offheight, height)
  try:
    return mujoco.Renderer(mj_model, height=height, width=width)
  except Exception as e:  # pylint: disable=broad-except
    raise headless.RenderingUnavailableError(
        f"mujoco.Renderer failed with MUJOCO_GL="
        f"{__import__('os').environ.get('MUJOCO_GL', '<unset>')!r}: "
        f"{type(e).__name__}: {e}. {headless.INSTALL_HINT}") from e


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
