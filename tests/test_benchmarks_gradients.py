"""benchmarks.gradients --fidelity takes third-party env names.

The per-env solver budgets of envs/thirdparty.py (``_DEFAULTS``) are chosen
with ``python -m benchmarks.gradients --fidelity --tasks brax/hopper
--settings ...`` (docs/benchmarks.md, "Gradient fidelity"). This runs that
command line in-process at a tiny size (2 steps, 2 directions, the resting
state only), so the numbers mean little; it checks that a ``brax/`` name
(``pipeline_state`` is Brax's own ``State``) and a ``playground/`` name
(skipped without the ``playground`` extra) go through the fidelity path in
float64 with the ``--settings`` override applied. Mostly compile time.
"""

from __future__ import annotations

import jax
import pytest


@pytest.fixture
def x64_restored():
  """``--fidelity`` turns on float64 for the process; turn it off after."""
  yield
  jax.config.update("jax_enable_x64", False)


@pytest.mark.slow
@pytest.mark.parametrize("name, setting", [("brax/hopper", "2/2"),
                                           ("playground/CartpoleSwingup", "1/4")])
def test_fidelity_takes_a_thirdparty_name(name, setting, x64_restored, capsys):
  if name.startswith("playground/"):
    pytest.importorskip("mujoco_playground")
  from benchmarks import gradients  # pylint: disable=import-outside-toplevel
  gradients.main(["--fidelity", "--tasks", name, "--settings", setting,
                  "--horizon", "2", "--directions", "2", "--reset-seeds", "0",
                  "--ad", "jvp"])
  out = capsys.readouterr().out
  rows = [line for line in out.splitlines() if line.startswith(f"| {name} | resting |")]
  assert rows, out
  cells = [c.strip() for c in rows[-1].strip("|").split("|")]
  assert cells[2] == setting.replace("/", " / "), cells  # the --settings override reached the env
  # float64: in float32 central differences at eps 1e-6 are noise
  assert float(cells[4]) <= gradients.REL_ERR_MAX and cells[-1] == "yes", rows[-1]
  assert out.rstrip().endswith("1/1 pass"), out
