"""Shared agent parts: normaliser, NaN-safe update, rollout resets, checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from agents import checkpoint, networks, normalizer, optim, rollout
from agents_toy_env import ToyBall, ToyPendulum


def test_normalizer_matches_numpy():
  rng = np.random.default_rng(0)
  a, b = rng.normal(2.0, 3.0, size=(40, 3)), rng.normal(-1.0, 0.5, size=(4, 6, 3))
  s = normalizer.update(normalizer.update(normalizer.init(3), jnp.asarray(a)), jnp.asarray(b))
  allx = np.concatenate([a, b.reshape(-1, 3)])
  np.testing.assert_allclose(np.asarray(s.mean), allx.mean(0), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(s.var), allx.var(0), rtol=1e-4)
  assert float(s.count) == 64
  z = normalizer.normalize(s, jnp.asarray(allx))
  np.testing.assert_allclose(np.asarray(z).mean(0), 0.0, atol=1e-4)


def test_safe_update_skips_non_finite_gradients():
  opt = optim.make_optimizer(0.1, 1.0, 10)
  params = {"w": jnp.ones(3)}
  state = opt.init(params)
  for bad in (jnp.nan, jnp.inf):
    p, s, _, skipped = optim.safe_update(opt, {"w": jnp.array([1.0, bad, 0.0])}, state, params)
    assert int(skipped) == 1
    np.testing.assert_array_equal(np.asarray(p["w"]), np.ones(3))
    assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.all(x == y)), s, state))
  p, s, gnorm, skipped = optim.safe_update(opt, {"w": jnp.array([3.0, 4.0, 0.0])}, state, params)
  assert int(skipped) == 0 and float(gnorm) == pytest.approx(5.0)
  assert not np.allclose(np.asarray(p["w"]), 1.0)


def test_learning_rate_decays_linearly():
  opt = optim.make_optimizer(1.0, 0.0, 4)
  params = jnp.zeros(())
  state = opt.init(params)
  steps = []
  for _ in range(5):
    upd, state = opt.update(jnp.ones(()), state, params)
    steps.append(-float(upd))
  # adam's first normalised step is ~1 * lr, so the step sizes follow the schedule
  np.testing.assert_allclose(steps[0], 1.0, rtol=1e-3)
  assert steps[1] < steps[0] and steps[3] < steps[2] and steps[4] == pytest.approx(0.0, abs=1e-6)


def test_rollout_cuts_gradients_at_resets():
  env = ToyPendulum(episode_length=3)
  carry = rollout.reset(env, jax.random.PRNGKey(0), 2)
  policy = lambda obs, key: 0.5 * obs[..., 2:3]  # action depends on the state

  def rewards(q0):
    c = carry.replace(state=carry.state.replace(pipeline_state=q0))
    _, tr = rollout.rollout(env, policy, c, jax.random.PRNGKey(1), 6, 3)
    return tr.reward

  q0 = carry.state.pipeline_state
  jac = jax.jacrev(rewards)(q0)            # [T, B, B, 2]
  jac = np.asarray(jac)
  assert np.all(np.isfinite(jac))
  assert np.abs(jac[:3]).sum() > 0         # first episode depends on the start
  np.testing.assert_array_equal(jac[3:], 0.0)  # after the reset it does not
  _, tr = rollout.rollout(env, policy, carry, jax.random.PRNGKey(1), 6, 3)
  np.testing.assert_array_equal(np.asarray(tr.truncated)[:, 0], [0, 0, 1, 0, 0, 1])
  np.testing.assert_array_equal(np.asarray(tr.terminated), 0)
  # the return of each finished episode is reported at its last step
  np.testing.assert_allclose(np.asarray(tr.episode_return)[2], np.asarray(tr.reward)[:3].sum(0),
                             rtol=1e-6)


def test_rollout_termination_and_pre_reset_obs():
  env = ToyPendulum(episode_length=100, terminate_below=0.5)
  carry = rollout.reset(env, jax.random.PRNGKey(3), 16)
  _, tr = rollout.rollout(env, lambda o, k: jnp.zeros(o.shape[:-1] + (1,)), carry,
                          jax.random.PRNGKey(0), 5, 100)
  term = np.asarray(tr.terminated) > 0
  assert term.any() and not np.asarray(tr.truncated).any()
  # next_obs is the state that terminated (pre-reset): upright < 0.5 there
  cos = np.asarray(tr.next_obs)[..., 0][term]
  assert np.all(np.square(0.5 * (1 + cos)) < 0.5)


def test_rollout_cut_at_contact_stops_gradient_at_touchdown():
  env = ToyBall()
  carry = rollout.reset(env, jax.random.PRNGKey(0), 3)
  policy = lambda obs, key: jnp.zeros(obs.shape[:-1] + (1,))

  def rewards(q0, cut):
    ps = carry.state.pipeline_state.replace(q=q0)
    c = carry.replace(state=carry.state.replace(pipeline_state=ps))
    _, tr = rollout.rollout(env, policy, c, jax.random.PRNGKey(1), 30, 1000,
                            cut_at_contact=cut)
    return tr.reward, tr.cut

  q0 = carry.state.pipeline_state.q
  _, cut = rewards(q0, True)
  cut = np.asarray(cut)                                  # [T, B]
  assert cut.shape == (30, 3) and np.all(cut.sum(0) >= 1)  # every ball lands
  first = cut.argmax(0)
  jac_cut = np.asarray(jax.jacrev(lambda q: rewards(q, True)[0])(q0))   # [T, B, B, 2]
  jac_full = np.asarray(jax.jacrev(lambda q: rewards(q, False)[0])(q0))
  for b in range(3):
    # up to the touchdown step the reward depends on the start, after it not
    assert np.abs(jac_cut[: first[b] + 1, b, b]).sum() > 0
    np.testing.assert_array_equal(jac_cut[first[b] + 1:, b], 0.0)
    assert np.abs(jac_full[first[b] + 1:, b, b]).sum() > 0
    np.testing.assert_array_equal(jac_cut[: first[b] + 1, b], jac_full[: first[b] + 1, b])
  assert rewards(q0, False)[1] is None


def test_contact_truncation_needs_contacts():
  from agents import shac
  config = shac.Config(num_timesteps=64, num_envs=2, horizon=4, critic_minibatches=1,
                       contact_truncation=True)
  with pytest.raises(ValueError, match="no-contact-truncation"):
    shac.train(ToyPendulum(), config, jax.random.PRNGKey(0))


def test_non_differentiable_env_is_rejected():
  from agents import apg, shac
  env = ToyPendulum(differentiable=False)
  for mod in (apg, shac):
    with pytest.raises(ValueError, match="differentiable=True"):
      mod.train(env, mod.Config(num_timesteps=64, num_envs=2, horizon=4, critic_minibatches=1)
                if mod is shac else mod.Config(num_timesteps=64, num_envs=2, horizon=4),
                jax.random.PRNGKey(0))


def test_default_mode_mjx_env_is_rejected():
  import envs
  from agents import shac
  with pytest.raises(ValueError, match=r"envs.make\(name, differentiable=True\)"):
    shac.train(envs.make("pendulum_swingup"), shac.Config(), jax.random.PRNGKey(0))


def test_config_errors_name_the_field():
  from agents import apg, shac
  with pytest.raises(ValueError, match="gamma"):
    shac.Config(gamma=1.5)
  with pytest.raises(ValueError, match="critic_minibatches"):
    shac.Config(num_envs=3, horizon=3, critic_minibatches=4)
  with pytest.raises(ValueError, match="num_timesteps"):
    apg.Config(num_timesteps=10)
  c = shac.Config(num_timesteps=10_000, num_envs=8, horizon=16)
  assert (c.steps_per_update, c.num_updates) == (128, 78)


def test_policy_save_load_roundtrip(tmp_path):
  spec = networks.PolicySpec(obs_size=3, action_size=2, hidden_sizes=(8, 8))
  norm = normalizer.update(normalizer.init(3), jnp.arange(12.0).reshape(4, 3))
  pp = networks.PolicyParams(networks.init_policy(spec, jax.random.PRNGKey(0)), norm, spec)
  path = tmp_path / "sub" / "policy.msgpack"
  checkpoint.save_policy(path, pp)
  loaded = checkpoint.load_policy(path)
  assert loaded.spec == spec
  obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
  act = jax.jit(lambda p, o: networks.make_policy(p)(o, None))
  a0, a1 = act(pp, obs), act(loaded, obs)
  np.testing.assert_array_equal(np.asarray(a0), np.asarray(a1))
  assert a0.shape == (5, 2) and np.all(np.abs(np.asarray(a0)) <= 1)
  s0 = jax.jit(lambda p, o, k: networks.make_policy(p, False)(o, k))(loaded, obs, jax.random.PRNGKey(2))
  assert not np.allclose(np.asarray(s0), np.asarray(a1))
  with pytest.raises(ValueError, match="size 4"):
    networks.make_policy(loaded)(jnp.zeros((4,)), None)
  (tmp_path / "junk").write_bytes(b"not a policy")
  with pytest.raises(ValueError, match="save_policy"):
    checkpoint.load_policy(tmp_path / "junk")
  with pytest.raises(FileNotFoundError):
    checkpoint.load_policy(tmp_path / "missing")


def test_evaluate_counts_only_the_first_episode():
  env = ToyPendulum(episode_length=50, terminate_below=0.05)
  policy = lambda obs, key: jnp.zeros(obs.shape[:-1] + (1,))
  record = lambda state: state.obs
  out = jax.jit(lambda k: rollout.evaluate(env, policy, k, 8, 30, record))(
      jax.random.PRNGKey(0))
  # reference: step each env by hand until its first done or 30 steps
  keys = jax.random.split(jax.random.split(jax.random.PRNGKey(0))[0], 8)
  returns, lengths, fell, last_obs = [], [], [], []
  for k in keys:
    s, ret, n = env.reset(k), 0.0, 0
    for _ in range(30):
      s = env.step(s, jnp.zeros(1))
      ret, n = ret + float(s.reward), n + 1
      if float(s.done):
        break
    returns.append(ret); lengths.append(n); fell.append(bool(s.done))
    last_obs.append(np.asarray(s.obs))
  assert 0 < sum(fell) < 8 and min(lengths) < 30  # some episodes terminated early
  np.testing.assert_allclose(np.asarray(out.returns), returns, rtol=1e-4)
  np.testing.assert_array_equal(np.asarray(out.lengths), lengths)
  np.testing.assert_array_equal(np.asarray(out.terminated), fell)
  # the recorded trajectory holds each episode's last state at lengths - 1
  traj = np.asarray(out.trajectory)  # [T, N, obs]
  ends = traj[np.asarray(lengths) - 1, np.arange(8)]
  np.testing.assert_allclose(ends, np.stack(last_obs), rtol=1e-5, atol=1e-6)
  assert np.asarray(out.start).shape == (8, traj.shape[-1])


def test_tanh_gaussian_log_prob_matches_jax_scipy():
  rng = np.random.default_rng(0)
  mean = jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)
  log_std = jnp.asarray(rng.normal(-0.5, 0.5, size=(5, 2)), jnp.float32)
  u = mean + jnp.exp(log_std) * jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)
  want = jnp.sum(jax.scipy.stats.norm.logpdf(u, mean, jnp.exp(log_std))
                 - jnp.log(1.0 - jnp.square(jnp.tanh(u))), axis=-1)
  got = networks.tanh_gaussian_log_prob(u, mean, log_std)
  assert got.shape == (5,)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_tanh_gaussian_log_prob_is_the_density_of_the_squashed_action():
  """The density of ``a = tanh(u)``, ``u ~ N(mean, std^2)``, by central
  differences of its CDF ``P(A <= a) = Phi((atanh(a) - mean) / std)`` in
  float64, against the log-probability at ``u = atanh(a)``."""
  import math
  mean, std = 0.3, 0.7
  cdf = lambda a: 0.5 * (1.0 + math.erf((math.atanh(a) - mean) / (std * math.sqrt(2.0))))
  h = 1e-6
  for a in (-0.95, -0.5, 0.0, 0.4, 0.9, 0.99):
    density = (cdf(a + h) - cdf(a - h)) / (2 * h)
    got = networks.tanh_gaussian_log_prob(jnp.array([math.atanh(a)]), jnp.array([mean]),
                                          jnp.array([math.log(std)]))
    np.testing.assert_allclose(float(got), math.log(density), rtol=1e-4, atol=1e-4)


def test_tanh_gaussian_log_prob_is_finite_where_tanh_saturates():
  # 1 - tanh(u)^2 rounds to 0 in float32 here; the exact identity does not
  u = jnp.array([12.0, -10.0]); mean = jnp.zeros(2); log_std = jnp.zeros(2)
  got, grad = jax.value_and_grad(
      lambda u: networks.tanh_gaussian_log_prob(u, mean, log_std))(u)
  u64 = np.array([12.0, -10.0])
  want = np.sum(-0.5 * u64**2 - 0.5 * np.log(2 * np.pi) - np.log1p(-np.tanh(u64)**2))
  np.testing.assert_allclose(float(got), want, rtol=1e-4)
  assert np.all(np.isfinite(np.asarray(grad)))


def test_sampled_log_prob_goes_with_the_policy_action():
  spec = networks.PolicySpec(obs_size=3, action_size=2, hidden_sizes=(8,), init_log_std=-0.5)
  params = networks.init_policy(spec, jax.random.PRNGKey(0))
  norm = normalizer.init(3)
  obs = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
  key = jax.random.PRNGKey(2)
  action, log_prob = networks.sample_with_log_prob(spec, params, norm, obs, key)
  # the same action as the stochastic policy draws with that key
  np.testing.assert_array_equal(
      np.asarray(action), np.asarray(networks.policy_apply(spec, params, norm, obs, key, False)))
  mean, log_std = spec.module().apply(params, normalizer.normalize(norm, obs))
  want = networks.tanh_gaussian_log_prob(jnp.arctanh(action), mean, log_std)
  assert log_prob.shape == (4,)
  np.testing.assert_allclose(np.asarray(log_prob), np.asarray(want), rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="PRNG key"):
    networks.sample_with_log_prob(spec, params, norm, obs, None)


def test_sapo_config_errors_name_the_field():
  from agents import sapo
  for field, value in (("num_critics", 0), ("init_temperature", 0.0),
                       ("temperature_learning_rate", -1.0), ("lam", 2.0)):
    with pytest.raises(ValueError, match=rf"agents\.sapo\.Config\.{field} must be"):
      sapo.Config(**{field: value})
  assert sapo.Config().target_entropy_for(3) == -3.0
  assert sapo.Config(target_entropy=-0.5).target_entropy_for(3) == -0.5


def _collect_a_failed_unretrieved_task(coroutine_fn) -> None:
  """Runs a task that raises, never retrieves its exception and collects it:
  asyncio then logs "Task exception was never retrieved" with a traceback."""
  import asyncio  # pylint: disable=import-outside-toplevel
  import gc  # pylint: disable=import-outside-toplevel
  loop = asyncio.new_event_loop()
  task = loop.create_task(coroutine_fn())
  loop.run_until_complete(asyncio.sleep(0.01))
  assert task.done()
  loop.close()
  del task
  gc.collect()


def test_orbax_read_followups_are_dropped_and_nothing_else(monkeypatch, caplog):
  """A damaged checkpoint's second failing orbax read reached stderr as an
  asyncio traceback beside the one-line error (1 run in ~7); restore's hook
  drops exactly that report."""
  import logging  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(logging.getLogger("asyncio"), "filters", [])
  monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)

  async def async_deserialize():  # the name of orbax's reading coroutine
    raise ValueError("OUT_OF_RANGE: Error reading byte range")

  async def something_else():
    raise ValueError("an unrelated failure")

  def reported():
    return [r for r in caplog.records
            if "Task exception was never retrieved" in r.getMessage()]

  with caplog.at_level(logging.ERROR, logger="asyncio"):
    _collect_a_failed_unretrieved_task(async_deserialize)
    assert len(reported()) == 1  # without the hook it reaches the log
    caplog.clear()
    checkpoint._quiet_orbax_read_followups()  # pylint: disable=protected-access
    checkpoint._quiet_orbax_read_followups()  # pylint: disable=protected-access
    assert len(logging.getLogger("asyncio").filters) == 1
    _collect_a_failed_unretrieved_task(async_deserialize)
    assert not reported()
    _collect_a_failed_unretrieved_task(something_else)
    assert len(reported()) == 1 and "something_else" in reported()[0].getMessage()
