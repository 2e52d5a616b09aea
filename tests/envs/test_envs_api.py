"""API contract of the env suite: make, names, configs, modes, registry.

No physics is compiled here except ``eval_shape``; these tests are fast.
"""

import dataclasses

import brax.envs
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from brax.envs import base as brax_base

import envs
from envs import physics

REQUIRED = {"pendulum_swingup", "cartpole_swingup", "cartpole_balance", "acrobot_swingup",
            "reacher", "swimmer", "hopper", "half_cheetah", "ant", "humanoid"}

OBS_SIZE = {"pendulum_swingup": 3, "cartpole_swingup": 5, "cartpole_balance": 5,
            "acrobot_swingup": 6, "reacher": 6, "swimmer": 11, "hopper": 11,
            "half_cheetah": 17, "ant": 27, "humanoid": 45}


def test_names_cover_required_tasks():
  assert REQUIRED <= set(envs.names())


def test_unknown_name_suggests_closest():
  with pytest.raises(ValueError, match="'hopper'") as err:
    envs.make("hoper")
  assert "Registered envs" in str(err.value)


def test_unknown_config_key_lists_valid_keys():
  with pytest.raises(ValueError, match="ctrl_cost_weight") as err:
    envs.make("hopper", ctrl_cost=0.1)
  assert "Valid keys" in str(err.value) and "n_frames" in str(err.value)


def test_bad_config_value_is_a_clear_error():
  with pytest.raises(ValueError, match="n_frames must be a positive integer"):
    envs.make("pendulum_swingup", n_frames=0)


def test_default_config_is_frozen_and_overrides_apply():
  config = envs.default_config("hopper")
  with pytest.raises(dataclasses.FrozenInstanceError):
    config.n_frames = 3  # type: ignore[misc]
  env = envs.make("hopper", n_frames=3, ctrl_cost_weight=0.5)
  assert env.config.n_frames == 3 and env.config.ctrl_cost_weight == 0.5


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_modes_and_brax_interface(name):
  env = envs.make(name)
  denv = envs.make(name, differentiable=True)
  config = env.config
  # Brax interface
  assert isinstance(env, brax_base.Env)
  assert env.backend == "mjx"
  assert env.observation_size == OBS_SIZE[name]
  assert env.action_size == env.mj_model.nu
  # mode settings on the host model
  assert isinstance(env.mj_model, mujoco.MjModel)
  assert env.mj_model.opt.iterations == config.iterations
  assert env.mj_model.opt.ls_iterations == config.ls_iterations
  assert env.mj_model.opt.tolerance > 0 and not physics.is_differentiable(env.sys)
  assert denv.mj_model.opt.tolerance == 0.0
  assert denv.mj_model.opt.iterations == config.diff_iterations
  assert denv.mj_model.opt.ls_iterations == config.diff_ls_iterations
  assert physics.is_differentiable(denv.sys)
  if config.diff_contact_solref is not None:
    assert (denv.mj_model.geom_solref == config.diff_contact_solref).all()
  assert env.mj_model.opt.timestep == pytest.approx(config.timestep)


def test_envs_are_immutable():
  env = envs.make("pendulum_swingup")
  with pytest.raises(AttributeError, match="immutable"):
    env.differentiable = True
  with pytest.raises(AttributeError, match="immutable"):
    env.config = env.config


def test_brax_registry_returns_project_envs():
  for name in sorted(REQUIRED):
    env = brax.envs.get_environment(envs.BRAX_PREFIX + name)
    assert isinstance(env, envs.env_class(name)), name
  denv = brax.envs.get_environment("diffrl/hopper", differentiable=True, n_frames=1)
  assert denv.differentiable and denv.config.n_frames == 1
  with pytest.raises(ValueError, match="backend='mjx'"):
    brax.envs.get_environment("diffrl/hopper", backend="generalized")


def test_importing_envs_leaves_brax_names_alone():
  """Brax's own registry entries are the same objects before and after
  ``import envs`` (a fresh interpreter, so nothing was imported before)."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  code = (
      "import brax.envs as b\n"
      "before = dict(b._envs)\n"
      "import envs\n"
      "changed = [k for k in before if b._envs[k] is not before[k]]\n"
      "added = sorted(set(b._envs) - set(before))\n"
      "assert 'hopper' in before and not changed, changed\n"
      "assert added == sorted('diffrl/' + n for n in envs.names()), added\n"
      "assert type(b.get_environment('hopper', backend='mjx')).__module__ == "
      "'brax.envs.hopper'\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-2000:]


def test_reset_state_is_brax_state_with_reward_metrics():
  env = envs.make("cartpole_swingup")
  state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
  assert isinstance(state, brax_base.State)
  assert set(state.metrics) == {"reward/upright", "reward/centered",
                                "reward/small_control", "reward/small_velocity"}


def test_fall_term_is_zero_when_clear_and_grows_towards_termination():
  """The locomotion ``fall`` penalty (off by default): 0 outside its bands,
  the weight at each termination boundary, with a slope that points up."""
  assert envs.default_config("hopper").fall_penalty_weight == 0.0
  env = envs.make("hopper", fall_penalty_weight=2.0, fall_height_margin=0.2,
                  fall_upright_margin=0.25)
  c = env.config  # termination at 0.7 m and uprightness 0.5

  class Data:  # the fields the reward terms read
    def __init__(self, z, up):
      self.qvel = jnp.zeros(6)
      self.xpos = jnp.zeros((4, 3)).at[1, 2].set(z)
      self.xmat = jnp.zeros((4, 3, 3)).at[1, 2, 2].set(up)

  def fall(z, up):
    terms = env._reward_terms(None, Data(z, up), jnp.zeros(3))
    return terms["fall"]

  assert float(fall(1.25, 1.0)) == 0.0
  assert float(fall(c.termination_height + 0.2, 0.75)) == 0.0  # band edges
  np.testing.assert_allclose(fall(c.termination_height, 1.0), -2.0, rtol=1e-6)
  np.testing.assert_allclose(fall(1.25, c.min_upright), -2.0, rtol=1e-6)
  np.testing.assert_allclose(fall(0.8, 0.625), -2.0 * (0.25 + 0.25), rtol=1e-6)
  dz, dup = jax.grad(fall, argnums=(0, 1))(0.8, 0.625)
  assert float(dz) > 0 and float(dup) > 0  # higher and more upright is better
  with pytest.raises(ValueError, match="fall_penalty_weight"):
    envs.make("hopper", fall_penalty_weight=-1.0)
  with pytest.raises(ValueError, match="fall_height_margin"):
    envs.make("hopper", fall_height_margin=0.0)


def test_healthy_term_pays_while_standing_and_never_on_a_fall():
  """The locomotion ``healthy`` bonus (off by default): the bonus on a step
  that does not terminate, 0 on one that does, and refused on a task that
  cannot fall."""
  assert envs.default_config("ant").healthy_reward == 0.0
  env = envs.make("hopper", healthy_reward=2.0)
  c = env.config

  class Data:
    def __init__(self, z, up):
      self.qvel = jnp.zeros(6)
      self.xpos = jnp.zeros((4, 3)).at[1, 2].set(z)
      self.xmat = jnp.zeros((4, 3, 3)).at[1, 2, 2].set(up)

  def healthy(z, up):
    return float(env._reward_terms(None, Data(z, up), jnp.zeros(3))["healthy"])

  assert healthy(1.25, 1.0) == 2.0
  assert healthy(c.termination_height - 0.01, 1.0) == 0.0
  assert healthy(1.25, c.min_upright - 0.01) == 0.0
  with pytest.raises(ValueError, match="healthy_reward.*never terminates"):
    envs.make("half_cheetah", healthy_reward=1.0)
