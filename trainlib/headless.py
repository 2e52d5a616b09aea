"""Headless OpenGL backend selection for MuJoCo rendering.

MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` once, when ``mujoco`` is
first imported, and PyOpenGL picks its platform from ``PYOPENGL_PLATFORM`` when
``OpenGL`` is first imported. Neither can be switched afterwards inside one
process, so the backend is chosen *before* either import: each candidate
(``egl`` first, then ``osmesa``) is probed in a short-lived subprocess that
renders one tiny frame, and the first that works is written to the
environment.

This module imports neither ``mujoco`` nor ``OpenGL``; call
:func:`configure` at the very top of an entry point.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

__all__ = ["GLStatus", "RenderingUnavailableError", "configure", "status"]

# Backends tried in order when the user has not set MUJOCO_GL.
CANDIDATES = ("egl", "osmesa")

INSTALL_HINT = (
    "Headless rendering needs EGL or OSMesa. On Debian/Ubuntu install them "
    "with `sudo apt-get install -y libegl1 libgl1 libosmesa6` (conda: "
    "`conda install -c conda-forge mesalib`), or set MUJOCO_GL to a backend "
    "that works on this machine (egl, osmesa, glfw with a display). To train "
    "without a video, pass --no-video.")

_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string(
    '<mujoco><worldbody><light pos="0 0 2"/>'
    '<geom type="sphere" size="0.2" rgba="1 0 0 1"/></worldbody></mujoco>')
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
with mujoco.Renderer(m, 16, 16) as r:
  r.update_scene(d)
  px = r.render()
assert px.max() > 0, 'blank frame'
"""


class RenderingUnavailableError(RuntimeError):
  """No headless OpenGL backend works; the message says what to install."""


@dataclasses.dataclass(frozen=True)
class GLStatus:
  """Outcome of :func:`configure`.

  Attributes:
    backend: the MUJOCO_GL value in use, or None when no backend works.
    chosen_by: "user" (MUJOCO_GL was already set), "probe", or "none".
    errors: backend -> last line of the probe's error, for failed backends.
  """
  backend: str | None
  chosen_by: str
  errors: dict[str, str]

  def require(self) -> str:
    """Returns the backend, or raises RenderingUnavailableError."""
    if self.backend is None:
      tried = "; ".join(f"{b}: {e}" for b, e in self.errors.items())
      raise RenderingUnavailableError(
          f"No headless OpenGL backend works (tried {tried}). {INSTALL_HINT}")
    return self.backend


_STATUS: GLStatus | None = None


def _probe(backend: str, timeout: float = 60.0) -> str | None:
  """Renders a tiny frame with `backend` in a subprocess; returns an error."""
  env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
  try:
    proc = subprocess.run([sys.executable, "-c", _PROBE], env=env,
                          capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    return f"probe timed out after {timeout:.0f}s"
  if proc.returncode == 0:
    return None
  lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
  return lines[-1] if lines else f"exit code {proc.returncode}"


def configure(candidates: tuple[str, ...] = CANDIDATES) -> GLStatus:
  """Chooses a headless GL backend and exports it (MUJOCO_GL etc.).

  Must run before ``mujoco`` is imported to have any effect. When MUJOCO_GL is
  already set it is respected and not probed. The result is cached.

  Returns:
    The GLStatus; ``status.require()`` raises if rendering is impossible.
  """
  global _STATUS
  if _STATUS is not None:
    return _STATUS
  user = os.environ.get("MUJOCO_GL", "").strip()
  if user:
    _STATUS = GLStatus(backend=user, chosen_by="user", errors={})
    return _STATUS
  if "mujoco" in sys.modules:
    # Too late to choose: mujoco already bound its default backend (glfw on
    # Linux). Report it so that rendering fails with the install hint.
    _STATUS = GLStatus(backend=None, chosen_by="none", errors={
        "all": "mujoco was imported before trainlib.headless.configure(); "
               "set MUJOCO_GL=egl (or osmesa) in the environment"})
    return _STATUS
  errors: dict[str, str] = {}
  for backend in candidates:
    err = _probe(backend)
    if err is None:
      os.environ["MUJOCO_GL"] = backend
      if backend in ("egl", "osmesa"):
        os.environ["PYOPENGL_PLATFORM"] = backend
      _STATUS = GLStatus(backend=backend, chosen_by="probe", errors=errors)
      return _STATUS
    errors[backend] = err
  # Leave MUJOCO_GL unset so that importing mujoco still works (rendering
  # is then refused with a clear message by GLStatus.require()).
  _STATUS = GLStatus(backend=None, chosen_by="none", errors=errors)
  return _STATUS


def status() -> GLStatus | None:
  """The cached result of :func:`configure`, or None if it has not run."""
  return _STATUS
