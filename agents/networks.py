"""Networks shared by APG, SHAC and SAPO: ELU + LayerNorm MLPs, a
tanh-Gaussian policy with reparameterised sampling (and its log-probability,
for SAPO's entropy term), and a state-value network.

The policy's static description (sizes) is a :class:`PolicySpec` kept in a
``pytree_node=False`` field of :class:`PolicyParams`, so a saved
``PolicyParams`` is self-describing: :func:`make_policy` needs nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from agents import normalizer as normalizer_lib

Params = Any


class MLP(nn.Module):
  """``Dense -> LayerNorm -> ELU`` per hidden layer, then a linear output."""

  hidden_sizes: Sequence[int]
  out_size: int
  out_scale: float = 1.0  # scale of the output layer's initial weights

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for size in self.hidden_sizes:
      x = nn.Dense(size)(x)
      x = nn.LayerNorm()(x)
      x = nn.elu(x)
    init = nn.initializers.variance_scaling(self.out_scale, "fan_avg", "uniform")
    return nn.Dense(self.out_size, kernel_init=init)(x)


class GaussianPolicyNet(nn.Module):
  """Pre-tanh Gaussian: state-dependent mean, state-independent log std."""

  hidden_sizes: Sequence[int]
  action_size: int
  init_log_std: float

  @nn.compact
  def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    mean = MLP(tuple(self.hidden_sizes), self.action_size, out_scale=0.01)(obs)
    log_std = self.param("log_std", nn.initializers.constant(self.init_log_std),
                         (self.action_size,))
    return mean, jnp.broadcast_to(log_std, mean.shape)


class ValueNet(nn.Module):
  """State-value network ``V(obs) -> []`` per observation."""

  hidden_sizes: Sequence[int]

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    return MLP(tuple(self.hidden_sizes), 1)(obs)[..., 0]


@dataclasses.dataclass(frozen=True)
class PolicySpec:
  """Static shapes of a policy (hashable; stored beside its parameters)."""

  obs_size: int
  action_size: int
  hidden_sizes: tuple[int, ...]
  init_log_std: float = -1.0

  def module(self) -> GaussianPolicyNet:
    return GaussianPolicyNet(self.hidden_sizes, self.action_size, self.init_log_std)


@struct.dataclass
class PolicyParams:
  """Everything needed to act: network weights, normaliser, static spec.

  Attributes:
    network: flax parameters of :class:`GaussianPolicyNet`.
    normalizer: observation statistics applied before the network.
    spec: static sizes (not a pytree leaf).
  """

  network: Params
  normalizer: normalizer_lib.NormalizerState
  spec: PolicySpec = struct.field(pytree_node=False)


def policy_spec(env: Any, config: Any) -> PolicySpec:
  """Static policy shapes for ``env`` under an agent ``config``
  (its ``policy_hidden_sizes`` and ``init_log_std``)."""
  return PolicySpec(int(env.observation_size), int(env.action_size),
                    tuple(config.policy_hidden_sizes), float(config.init_log_std))


def init_policy(spec: PolicySpec, key: jax.Array) -> Params:
  """Initial policy-network parameters for ``spec``."""
  return spec.module().init(key, jnp.zeros((1, spec.obs_size)))


def init_value(obs_size: int, hidden_sizes: Sequence[int], key: jax.Array) -> Params:
  """Initial value-network parameters."""
  return ValueNet(tuple(hidden_sizes)).init(key, jnp.zeros((1, obs_size)))


def value_apply(hidden_sizes: Sequence[int], params: Params,
                norm: normalizer_lib.NormalizerState, obs: jax.Array) -> jax.Array:
  """``V(normalize(obs))``; ``obs [..., obs_size] -> [...]``."""
  return ValueNet(tuple(hidden_sizes)).apply(params, normalizer_lib.normalize(norm, obs))


def policy_apply(spec: PolicySpec, network: Params,
                 norm: normalizer_lib.NormalizerState, obs: jax.Array,
                 key: jax.Array | None, deterministic: bool) -> jax.Array:
  """Action in ``[-1, 1]`` for ``obs [..., obs_size] -> [..., action_size]``.

  Stochastic actions are ``tanh(mean + std * eps)`` with ``eps ~ N(0, I)``
  (reparameterised, so differentiable in the parameters); deterministic ones are
  ``tanh(mean)``.
  """
  if deterministic:
    mean, _ = spec.module().apply(network, normalizer_lib.normalize(norm, obs))
    return jnp.tanh(mean)
  return sample_with_log_prob(spec, network, norm, obs, key)[0]


def tanh_gaussian_log_prob(u: jax.Array, mean: jax.Array,
                           log_std: jax.Array) -> jax.Array:
  """Log-density of the action ``a = tanh(u)``, ``u ~ N(mean, exp(log_std)^2)``.

  ``log pi(a) = sum_i [log N(u_i; mean_i, std_i) - log(1 - tanh(u_i)^2)]``
  (change of variables through the tanh). The Jacobian term uses the exact
  identity ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2 u))``, finite
  for any ``u`` (``1 - tanh(u)^2`` itself rounds to 0 in float32 once
  ``|u| > 9``), instead of the common ``log(1 - a^2 + eps)``.

  Args:
    u: ``[..., action_size]`` pre-tanh sample.
    mean: ``[..., action_size]`` Gaussian mean.
    log_std: ``[..., action_size]`` Gaussian log standard deviation.

  Returns:
    ``[...]`` log-probability, summed over the action dimensions.
  """
  z = (u - mean) * jnp.exp(-log_std)
  log_normal = -0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
  log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
  return jnp.sum(log_normal - log_det, axis=-1)


def sample_with_log_prob(spec: PolicySpec, network: Params,
                         norm: normalizer_lib.NormalizerState, obs: jax.Array,
                         key: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """A reparameterised stochastic action and its log-probability.

  ``a = tanh(mean + std * eps)`` with ``eps ~ N(0, I)`` (the action
  :func:`policy_apply` samples with the same key), differentiable in the
  parameters, and ``log pi(a | obs)`` from :func:`tanh_gaussian_log_prob`.

  Args:
    spec, network, norm: as for :func:`policy_apply`.
    obs: ``[..., obs_size]``.
    key: PRNG key of the noise.

  Returns:
    ``(action [..., action_size], log_prob [...])``.

  Raises:
    ValueError: if ``key`` is None.
  """
  if key is None:
    raise ValueError("a stochastic policy needs a PRNG key; pass key= or "
                     "use deterministic=True")
  mean, log_std = spec.module().apply(network, normalizer_lib.normalize(norm, obs))
  eps = jax.random.normal(key, mean.shape, mean.dtype)
  u = mean + jnp.exp(log_std) * eps
  return jnp.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)


def make_policy(policy_params: PolicyParams, deterministic: bool = True
                ) -> Callable[[jax.Array, jax.Array | None], jax.Array]:
  """Action function built from a :class:`PolicyParams` alone.

  Args:
    policy_params: as returned by ``agents.apg.train``/``agents.shac.train`` or
      ``agents.checkpoint.load_policy``.
    deterministic: ``tanh(mean)`` if True, else a reparameterised sample.

  Returns:
    ``policy(obs, key) -> action`` with ``obs [..., obs_size]`` and
    ``action [..., action_size]`` in ``[-1, 1]``; ``key`` is ignored (may be
    None) when deterministic. Jit-able and vmap-able.

  Raises:
    TypeError: if ``policy_params`` is not a ``PolicyParams``.
  """
  if not isinstance(policy_params, PolicyParams):
    raise TypeError(f"make_policy expects agents.networks.PolicyParams, got "
                    f"{type(policy_params).__name__}; load saved params with "
                    "agents.checkpoint.load_policy(path)")
  spec = policy_params.spec

  def policy(obs: jax.Array, key: jax.Array | None = None) -> jax.Array:
    if obs.shape[-1] != spec.obs_size:
      raise ValueError(f"observation has size {obs.shape[-1]}, this policy was "
                       f"trained on size {spec.obs_size}")
    return policy_apply(spec, policy_params.network, policy_params.normalizer,
                        obs, key, deterministic)

  return policy
