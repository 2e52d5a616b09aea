"""Loss tests against hand-computed numbers and plain-Python loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.apg import losses as apg_losses
from agents.sapo import losses as sapo_losses
from agents.shac import losses


def _td_lambda_reference(r, v, term, trunc, gamma, lam):
  """lam-weighted average of n-step returns, truncated at episode/window ends."""
  T, B = r.shape
  out = np.zeros((T, B))
  for b in range(B):
    for t in range(T):
      end = t
      while end < T - 1 and not (term[end, b] or trunc[end, b]):
        end += 1
      n_max = end - t + 1
      g_n = []
      for n in range(1, n_max + 1):
        g = sum(gamma**k * r[t + k, b] for k in range(n))
        last = t + n - 1
        boot = 0.0 if term[last, b] else v[last, b]
        g_n.append(g + gamma**n * boot)
      value = sum((1 - lam) * lam**(n - 1) * g_n[n - 1] for n in range(1, n_max))
      value += lam**(n_max - 1) * g_n[-1]
      out[t, b] = value
  return out


@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
def test_td_lambda_matches_python_loop(lam):
  rng = np.random.default_rng(0)
  T, B = 7, 5
  r = rng.normal(size=(T, B))
  v = rng.normal(size=(T, B)) * 3
  term = np.zeros((T, B)); trunc = np.zeros((T, B))
  term[2, 0] = 1; trunc[4, 1] = 1; term[0, 2] = 1; term[6, 3] = 1; trunc[3, 4] = 1; term[5, 4] = 1
  got = losses.td_lambda_targets(jnp.asarray(r), jnp.asarray(v), jnp.asarray(term),
                                 jnp.asarray(trunc), 0.9, lam)
  want = _td_lambda_reference(r, v, term, trunc, 0.9, lam)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_td_lambda_hand_numbers():
  # one env, no ends: T=2, gamma=0.5, lam=0.5
  r = jnp.array([[1.0], [2.0]]); v = jnp.array([[4.0], [8.0]]); z = jnp.zeros((2, 1))
  got = losses.td_lambda_targets(r, v, z, z, 0.5, 0.5)
  g1 = 2 + 0.5 * 8                       # 6
  g0 = 1 + 0.5 * (0.5 * 4 + 0.5 * g1)    # 1 + 0.5 * 5 = 3.5
  np.testing.assert_allclose(np.asarray(got)[:, 0], [g0, g1], rtol=1e-6)


R = jnp.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])   # [T=3, B=2]
V = jnp.array([[10.0, 4.0], [20.0, 5.0], [30.0, 6.0]])
Z = jnp.zeros((3, 2))
END_AT_1 = jnp.array([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])


def test_actor_loss_bootstrap_only():
  # env0: 1 + .5*2 + .25*3 + .125*30 = 6.5; env1: 1 + .5 + .25 + .125*6 = 2.5
  got = losses.actor_loss(R, V, Z, Z, 0.5)
  np.testing.assert_allclose(float(got), -(6.5 + 2.5) / 6, rtol=1e-6)


def test_actor_loss_termination_drops_value_and_restarts_discount():
  # env1 terminates at t=1: (1 + .5*1 + .25*0) + (1 + .5*6) = 1.5 + 4 = 5.5
  got = losses.actor_loss(R, V, END_AT_1, Z, 0.5)
  np.testing.assert_allclose(float(got), -(6.5 + 5.5) / 6, rtol=1e-6)


def test_actor_loss_truncation_bootstraps_pre_reset_value():
  # env1 truncated at t=1: (1 + .5*1 + .25*5) + (1 + .5*6) = 2.75 + 4 = 6.75
  got = losses.actor_loss(R, V, Z, END_AT_1, 0.5)
  np.testing.assert_allclose(float(got), -(6.5 + 6.75) / 6, rtol=1e-6)


def test_actor_loss_contact_cut_bootstraps_and_restarts_discount():
  # env1 cut at t=1 (episode goes on): the same segments as a truncation there
  got = losses.actor_loss(R, V, Z, Z, 0.5, cut=END_AT_1)
  np.testing.assert_allclose(float(got), -(6.5 + 6.75) / 6, rtol=1e-6)


def test_actor_loss_terminal_gradient_keeps_the_value_and_takes_the_slope():
  """terminal_gradient: the same loss, and the terminated step's value gets
  the discount it would have as a bootstrap (0.25 at env1, t=1) instead of 0."""
  plain = losses.actor_loss(R, V, END_AT_1, Z, 0.5)
  kept = losses.actor_loss(R, V, END_AT_1, Z, 0.5, terminal_gradient=True)
  np.testing.assert_allclose(float(kept), float(plain), rtol=1e-6)
  g_v = jax.grad(losses.actor_loss, argnums=1)(R, V, END_AT_1, Z, 0.5, None, True)
  np.testing.assert_allclose(np.asarray(g_v), -np.array([[0, 0], [0, 0.25], [0.125, 0.5]]) / 6,
                             rtol=1e-6)


def test_actor_loss_gradients_are_the_discounts():
  g_r, g_v = jax.grad(losses.actor_loss, argnums=(0, 1))(R, V, END_AT_1, Z, 0.5)
  np.testing.assert_allclose(np.asarray(g_r), -np.array([[1, 1], [0.5, 0.5], [0.25, 1]]) / 6,
                             rtol=1e-6)
  # env1: value at t=1 is dropped (terminated), value at t=2 bootstraps with 0.5
  np.testing.assert_allclose(np.asarray(g_v), -np.array([[0, 0], [0, 0], [0.125, 0.5]]) / 6,
                             rtol=1e-6)


def test_actor_loss_ignores_nan_value_of_terminated_state():
  v = V.at[1, 1].set(jnp.nan)
  loss, g = jax.value_and_grad(losses.actor_loss, argnums=1)(R, v, END_AT_1, Z, 0.5)
  assert np.isfinite(float(loss)) and np.all(np.isfinite(np.asarray(g)))


def test_apg_loss_discounted_mean():
  got = apg_losses.apg_loss(R, 0.5)
  want = -np.mean(np.array([[1, 1], [1, 0.5], [0.75, 0.25]]))
  np.testing.assert_allclose(float(got), want, rtol=1e-6)
  np.testing.assert_allclose(float(apg_losses.apg_loss(R)), -np.mean(np.asarray(R)), rtol=1e-6)


def test_critic_loss_mse():
  np.testing.assert_allclose(float(losses.critic_loss(jnp.array([1.0, 3.0]), jnp.array([0.0, 1.0]))),
                             2.5)


def test_sapo_soft_rewards_add_the_entropy_bonus_with_a_constant_temperature():
  log_probs = jnp.array([[-1.0, 0.5], [2.0, -0.25], [0.0, 1.0]])
  got = sapo_losses.soft_rewards(R, log_probs, 0.5)
  np.testing.assert_allclose(np.asarray(got), np.asarray(R) - 0.5 * np.asarray(log_probs),
                             rtol=1e-6)
  # the actor's gradient reaches the log-probabilities, never the temperature
  g_lp, g_t = jax.grad(lambda lp, t: jnp.sum(sapo_losses.soft_rewards(R, lp, t)),
                       argnums=(0, 1))(log_probs, 0.5)
  np.testing.assert_allclose(np.asarray(g_lp), -0.5)
  assert float(g_t) == 0.0


def test_sapo_soft_actor_loss_is_shacs_on_soft_rewards():
  # one env, T=2, gamma=0.5, alpha=0.1: soft rewards 1 - 0.1*(-2) = 1.2 and
  # 2 - 0.1*3 = 1.7, then the clipped bootstrap min(4, 6) = 4:
  # -(1.2 + 0.5*1.7 + 0.25*4) / (T*B) = -3.05 / 2
  r = jnp.array([[1.0], [2.0]]); lp = jnp.array([[-2.0], [3.0]]); z = jnp.zeros((2, 1))
  v = sapo_losses.min_over_critics(jnp.array([[[9.0], [4.0]], [[1.0], [6.0]]]))
  np.testing.assert_array_equal(np.asarray(v), [[1.0], [4.0]])
  got = losses.actor_loss(sapo_losses.soft_rewards(r, lp, 0.1), v, z, z, 0.5)
  np.testing.assert_allclose(float(got), -3.05 / 2, rtol=1e-6)


@pytest.mark.parametrize("entropy, target, sign", [(0.5, -1.0, 1.0), (-3.0, -1.0, -1.0)])
def test_sapo_temperature_falls_above_the_target_entropy_and_rises_below(entropy, target,
                                                                          sign):
  log_alpha = jnp.log(0.1)
  loss, g = jax.value_and_grad(sapo_losses.temperature_loss)(log_alpha, entropy, target)
  np.testing.assert_allclose(float(g), entropy - target, rtol=1e-6)
  np.testing.assert_allclose(float(loss), float(log_alpha) * (entropy - target), rtol=1e-6)
  # a descent step lowers alpha above the target entropy and raises it below
  assert np.sign(float(g)) == sign
  # the entropy is a constant of this loss
  assert float(jax.grad(sapo_losses.temperature_loss, argnums=1)(log_alpha, entropy,
                                                                  target)) == 0.0


def test_sapo_entropy_estimate_is_minus_the_mean_log_prob():
  lp = jnp.array([[-1.0, 0.5], [2.0, -0.25]])
  np.testing.assert_allclose(float(sapo_losses.entropy_estimate(lp)), -0.3125, rtol=1e-6)
