"""End-to-end behaviour of APG/SHAC/SAPO on the pure-JAX toy env (fast compiles)."""

import dataclasses
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from agents import apg, checkpoint, loop, networks, sapo, shac
from agents_toy_env import ToyPendulum

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL_SHAC = shac.Config(num_timesteps=3 * 8 * 8, num_envs=8, horizon=8, critic_epochs=2,
                         critic_minibatches=2, policy_hidden_sizes=(16,),
                         critic_hidden_sizes=(16,), log_every=1)
SMALL_APG = apg.Config(num_timesteps=3 * 8 * 8, num_envs=8, horizon=8, policy_hidden_sizes=(16,),
                       log_every=1)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.fixture(scope="module")
def shac_runs():
  """Two SHAC runs with one seed and one with another, plus progress logs."""
  env = ToyPendulum(episode_length=20)
  logs = []
  a = shac.train(env, SMALL_SHAC, jax.random.PRNGKey(0),
                 progress_fn=lambda s, m: logs.append((s, m)))
  b = shac.train(env, SMALL_SHAC, jax.random.PRNGKey(0))
  c = shac.train(env, SMALL_SHAC, jax.random.PRNGKey(1))
  return a, b, c, logs


def test_same_seed_same_parameters(shac_runs):
  (pa, ma), (pb, mb), (pc, _), _ = shac_runs
  for x, y in zip(_leaves(pa), _leaves(pb)):
    np.testing.assert_array_equal(x, y)
  assert ma["train/actor_loss"] == mb["train/actor_loss"]
  assert any(not np.array_equal(x, y) for x, y in zip(_leaves(pa), _leaves(pc)))


def test_progress_metrics(shac_runs):
  *_, logs = shac_runs
  assert [s for s, _ in logs] == [64, 128, 192]
  assert "train/compile_s" in logs[0][1]
  assert all("train/compile_s" not in m for _, m in logs[1:])
  for key in ("train/episode_return", "train/actor_loss", "train/critic_loss",
              "train/grad_norm", "train/skipped_updates", "train/sps", "reward/upright"):
    assert key in logs[-1][1], key
  assert logs[-1][1]["train/skipped_updates"] == 0
  assert all(np.isfinite(m["train/actor_loss"]) for _, m in logs)


def _same(a, b):
  return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b)))


def test_compiled_update_cache_never_runs_a_stale_closure():
  """agents.loop reuses a compiled update only for the same agent, env and
  config: a changed config field or another env of the same class and
  shapes compiles anew (a stale hit would train with the old values)."""
  env = ToyPendulum(episode_length=20)
  key = jax.random.PRNGKey(0)
  base = SMALL_APG
  loop._COMPILED.clear()  # pylint: disable=protected-access
  p_base, _ = apg.train(env, base, key)
  entries = len(loop._COMPILED)  # pylint: disable=protected-access
  p_again, _ = apg.train(env, base, key)
  assert len(loop._COMPILED) == entries  # reused, nothing new compiled  # pylint: disable=protected-access
  assert _same(p_base, p_again)
  changed = {
      "learning_rate": (dataclasses.replace(base, learning_rate=10 * base.learning_rate), env),
      "env": (base, ToyPendulum(episode_length=20, max_torque=0.5)),
  }
  for what, (config, e) in changed.items():
    p_cached, _ = apg.train(e, config, key)   # the cache holds the base run
    loop._COMPILED.clear()  # pylint: disable=protected-access
    p_fresh, _ = apg.train(e, config, key)
    assert _same(p_cached, p_fresh), f"{what}: a stale compiled update ran"
    assert not _same(p_cached, p_base), f"{what}: the change had no effect"
    apg.train(env, base, key)  # refill the cache with the base run


def test_nan_gradients_are_skipped_and_counted():
  env = ToyPendulum(nan_grad=True)
  init = apg.init(env, SMALL_APG, jax.random.PRNGKey(0))
  pp, metrics = apg.train(env, SMALL_APG, jax.random.PRNGKey(0))
  assert metrics["train/skipped_updates"] == SMALL_APG.num_updates
  for x, y in zip(_leaves(pp.network), _leaves(init.policy)):
    assert np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, y)


def test_checkpoint_and_resume(tmp_path):
  env = ToyPendulum(episode_length=20)
  config = apg.Config(num_timesteps=4 * 8 * 8, num_envs=8, horizon=8, policy_hidden_sizes=(16,),
                      log_every=2)
  saved = []
  apg.train(env, config, jax.random.PRNGKey(0),
            checkpoint_fn=lambda ts, carry: saved.append(ts), checkpoint_every=2)
  assert [int(s.iteration) for s in saved] == [2, 4]
  # orbax round trip of a TrainState, restored into an init() target
  import orbax.checkpoint as ocp
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(tmp_path / "ts", saved[0])
  ckpt.wait_until_finished()
  target = apg.init(env, config, jax.random.PRNGKey(5))
  restored = ckpt.restore(tmp_path / "ts", target)
  for x, y in zip(_leaves(restored), _leaves(saved[0])):
    np.testing.assert_array_equal(x, y)
  logs = []
  pp, _ = apg.train(env, config, jax.random.PRNGKey(0), initial_state=restored,
                    progress_fn=lambda s, m: logs.append(s))
  assert logs == [192, 256]
  checkpoint.save_policy(tmp_path / "p.msgpack", pp)
  action = networks.make_policy(checkpoint.load_policy(tmp_path / "p.msgpack"))(
      np.zeros(3, np.float32), None)
  assert action.shape == (1,)


def _stopped_and_restored(agent, env, config, key, tmp_path, updates):
  """Trains ``agent`` with checkpoints every 2 updates, stops it after
  ``updates`` (as if killed there), and restores the last checkpoint into a
  fresh process's template: ``(train_state, env_carry, step)``."""
  ckpts = checkpoint.StateCheckpoints(tmp_path / "checkpoints")
  agent.train(env, config, key, checkpoint_fn=ckpts.save, checkpoint_every=2,
              should_stop=lambda ts: int(ts.iteration) >= updates)
  ckpts.close()
  ckpts = checkpoint.StateCheckpoints(tmp_path / "checkpoints")
  state, carry, step, _ = ckpts.restore(
      agent.init(env, config, jax.random.PRNGKey(9)),
      loop.abstract_carry(env, config.num_envs, loop.make_mesh(config.num_envs)))
  ckpts.close()
  return state, carry, step


def test_a_resumed_run_repeats_the_uninterrupted_one(tmp_path):
  """A checkpoint holds the train state and the envs' state after the same
  update, so training resumed from it (through orbax, on disk) ends
  bit-identical to a run that was never stopped; with the envs reset on
  resume instead, it does not."""
  env = ToyPendulum(episode_length=20)
  config = apg.Config(num_timesteps=6 * 8 * 8, num_envs=8, horizon=8,
                      policy_hidden_sizes=(16,), log_every=6)
  key = jax.random.PRNGKey(0)
  full, _ = apg.train(env, config, key)
  state, carry, step = _stopped_and_restored(apg, env, config, key, tmp_path, 4)
  assert step == 4 and carry is not None
  resumed, _ = apg.train(env, config, key, initial_state=state, initial_carry=carry)
  fresh, _ = apg.train(env, config, key, initial_state=state)
  for x, y in zip(_leaves(full.network), _leaves(resumed.network)):
    np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, y) for x, y in
             zip(_leaves(full.network), _leaves(fresh.network)))


@pytest.mark.slow  # two subprocesses, each compiling SHAC/APG
def test_two_devices_match_one_device(tmp_path):
  """The env batch sharded over 2 host devices gives the 1-device result."""
  script = os.path.join(HERE, "agents_shard_script.py")
  procs = {}
  for n in (1, 2):
    flags = os.environ.get("XLA_FLAGS", "")  # the session's (tests/conftest.py)
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count={n}")
    procs[n] = subprocess.Popen([sys.executable, script, str(tmp_path / f"{n}.npz")],
                                env=env, stderr=subprocess.PIPE, text=True)
  for n, p in procs.items():
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
  one, two = np.load(tmp_path / "1.npz"), np.load(tmp_path / "2.npz")
  assert int(one["devices"]) == 1 and int(two["devices"]) == 2
  keys = [k for k in one.files if k.startswith("arr_")]
  assert keys
  for k in keys:
    np.testing.assert_allclose(one[k], two[k], rtol=1e-4, atol=1e-5)


def test_sapo_learns_its_temperature_and_resumes_bit_identically(tmp_path):
  """SAPO on the toy env: its metrics are finite; the temperature, logged
  per update, falls while the entropy estimate is above the target
  (``-action_size`` = -1); the critics are two networks with their own
  parameters; and a run resumed from an orbax checkpoint (its extra state:
  stacked critics, per-critic optimiser states, the temperature) ends
  bit-identical to the uninterrupted one."""
  env = ToyPendulum(episode_length=20)
  config = sapo.Config(num_timesteps=4 * 8 * 8, num_envs=8, horizon=8, critic_epochs=2,
                       critic_minibatches=2, policy_hidden_sizes=(16,),
                       critic_hidden_sizes=(16,), log_every=1)
  key = jax.random.PRNGKey(0)
  logs, saved = [], []
  full, _ = sapo.train(env, config, key, progress_fn=lambda s, m: logs.append(m),
                       checkpoint_fn=lambda ts, carry: saved.append(ts))
  for m in logs:
    for k in ("train/actor_loss", "train/critic_loss", "train/value",
              "train/temperature", "train/entropy"):
      assert np.isfinite(m[k]), (k, m[k])
    assert m["train/skipped_updates"] == 0
  temperatures = [m["train/temperature"] for m in logs]
  assert temperatures[0] == pytest.approx(config.init_temperature, rel=1e-6)
  assert all(m["train/entropy"] > -1.0 for m in logs)
  assert all(b < a for a, b in zip(temperatures, temperatures[1:])), temperatures
  (final,) = saved
  critics = _leaves(final.value)
  assert all(leaf.shape[0] == config.num_critics for leaf in critics)
  assert any(not np.array_equal(leaf[0], leaf[1]) for leaf in critics)
  state, carry, step = _stopped_and_restored(sapo, env, config, key, tmp_path, 2)
  assert step == 2
  resumed, _ = sapo.train(env, config, key, initial_state=state, initial_carry=carry)
  for x, y in zip(_leaves(full.network), _leaves(resumed.network)):
    np.testing.assert_array_equal(x, y)
