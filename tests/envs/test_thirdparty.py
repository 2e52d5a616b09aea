"""Third-party envs (envs.thirdparty): brax/<name> and playground/<Name>
through envs.make, their configs and presets, the differentiable mode's
solver settings, and the errors a user sees. Construction only (no XLA
compile) except the Playground gradient test (slow, skipped without the
``playground`` extra)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import configs
import envs
from envs import thirdparty

ROOT = Path(__file__).resolve().parents[2]


def test_names_and_defaults():
  assert "brax/hopper" in thirdparty.brax_names()
  assert not any(n.startswith("brax/diffrl") for n in thirdparty.brax_names())
  config = envs.default_config("brax/hopper")
  assert isinstance(config, thirdparty.ThirdPartyConfig)
  assert config.forward_body == "torso"
  assert envs.env_class("brax/hopper") is thirdparty.ThirdPartyEnv
  assert "brax/hopper" not in envs.names()  # names() lists this project's tasks


def test_unknown_names_suggest_close_ones():
  with pytest.raises(ValueError, match="Did you mean 'brax/hopper'"):
    envs.make("brax/hoper")
  with pytest.raises(configs.ConfigError, match="brax/hopper"):
    configs.check_env_name("brax/hoper")
  with pytest.raises(ValueError, match="Unknown config key"):
    envs.make("brax/hopper", diff_iteration=3)


def test_modes():
  """Differentiable mode: tolerance 0 (static), the config's iterations,
  and a host model in step with the MJX model; default mode: Brax's own."""
  d = envs.make("brax/hopper", differentiable=True, diff_iterations=3,
                diff_ls_iterations=2)
  assert d.differentiable and envs.physics.is_differentiable(d.sys)
  assert (d.sys.opt.iterations, d.sys.opt.ls_iterations) == (3, 2)
  assert d.mj_model.opt.tolerance == 0 and d.mj_model.opt.iterations == 3
  assert d.mj_model.opt.timestep == pytest.approx(float(d.sys.opt.timestep))
  assert d.forward_body_id == d.mj_model.body("torso").id
  assert d.dt == pytest.approx(d.n_frames * float(d.sys.opt.timestep))
  assert not hasattr(d, "env")  # agents.rollout.unwrap must stop here
  p = envs.make("brax/hopper")
  assert not p.differentiable and float(p.sys.opt.tolerance) > 0


def test_bad_forward_body_names_the_bodies():
  with pytest.raises(ValueError, match="no body 'fingertip' for forward_body; bodies: .*body1"):
    envs.make("brax/reacher", forward_body="fingertip")


def test_brax_registry_left_alone():
  from brax import envs as brax_envs  # pylint: disable=import-outside-toplevel
  before = dict(brax_envs._envs)  # pylint: disable=protected-access
  envs.make("brax/hopper", differentiable=True)
  assert brax_envs._envs == before  # pylint: disable=protected-access
  assert float(brax_envs.get_environment("hopper", backend="mjx").sys.opt.tolerance) > 0


def test_presets_resolve():
  own = configs.resolve("brax/hopper", backend="cpu")
  assert own.agent == "shac" and isinstance(own.env_config, thirdparty.ThirdPartyConfig)
  generic = configs.resolve("brax/walker2d", "ppo", backend="cpu")
  assert configs.preset_path("brax/walker2d").name == "_default.yaml"
  assert generic.env_config.forward_body == "torso"


@pytest.mark.slow
def test_importing_envs_does_not_import_playground():
  code = ("import sys, envs; envs.make('brax/hopper'); "
          "assert 'mujoco_playground' not in sys.modules")
  subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=300)


def test_missing_playground_is_one_line(monkeypatch):
  monkeypatch.setitem(sys.modules, "mujoco_playground", None)  # import fails
  with pytest.raises(thirdparty.MissingPackageError) as e:
    envs.make("playground/CartpoleSwingup")
  msg = str(e.value)
  assert "pip install -e '.[playground]'" in msg and "\n" not in msg
  with pytest.raises(configs.ConfigError, match=r"\.\[playground\]"):
    configs.check_env_name("playground/CartpoleSwingup")


@pytest.mark.slow
def test_playground_gradient():
  """Playground's CartpoleSwingup in differentiable mode passes the health
  check (about a minute on 2 cores, mostly compile)."""
  pytest.importorskip("mujoco_playground")
  import jax  # pylint: disable=import-outside-toplevel
  from agents import health  # pylint: disable=import-outside-toplevel
  env = envs.make("playground/CartpoleSwingup", differentiable=True)
  assert envs.physics.is_differentiable(env.sys)
  assert env.config.episode_length == 1000  # Playground's own
  report = health.check_gradients(env, jax.random.PRNGKey(0), states=2, horizon=8)
  assert report.ok, report.message()


def test_playground_presets_resolve():
  pytest.importorskip("mujoco_playground")
  for name in ("playground/CartpoleSwingup", "playground/CheetahRun"):
    for agent in ("shac", "ppo"):
      resolved = configs.resolve(name, agent, backend="cpu")
      assert resolved.env_config == envs.default_config(name)
  assert configs.preset_path("playground/CheetahRun").name == "_default.yaml"


def test_run_config_round_trips(tmp_path):
  """A third-party run's config.yaml reads back (train.py --resume,
  evaluate.py), and its run directory name has no slash."""
  from trainlib import rundir  # pylint: disable=import-outside-toplevel
  resolved = configs.resolve("brax/hopper", "shac", backend="cpu")
  rundir.write_config(tmp_path / "config.yaml", resolved)
  back = rundir.read_config(tmp_path / "config.yaml")
  assert back.env_name == "brax/hopper" and back.env_config == resolved.env_config
  assert back.run.gradient_check is True
  path = rundir.new_run_dir(tmp_path, "brax/hopper", "shac")
  assert path.parent == tmp_path and path.name.startswith("brax-hopper-shac-")
