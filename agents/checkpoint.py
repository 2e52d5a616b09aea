"""Save and load policies and train states.

* :func:`save_policy` / :func:`load_policy`: one file per policy
  (:class:`agents.networks.PolicyParams`), flax msgpack of ``{"format",
  "spec", "network", "normalizer"}``, where ``spec`` holds the static sizes,
  so :func:`load_policy` needs nothing but the path.
* :class:`StateCheckpoints`: orbax checkpoints of a whole ``TrainState`` (a
  plain array pytree) for resuming, keyed by update.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from agents.networks import PolicyParams, PolicySpec
from agents.normalizer import NormalizerState

FORMAT = "mjx-diffrl-policy-v1"


def save_policy(path: str | os.PathLike, policy_params: PolicyParams) -> None:
  """Writes ``policy_params`` to ``path`` (parent directories are created).

  Raises:
    TypeError: if ``policy_params`` is not a ``PolicyParams``.
  """
  if not isinstance(policy_params, PolicyParams):
    raise TypeError(f"save_policy expects agents.networks.PolicyParams, got "
                    f"{type(policy_params).__name__}")
  spec = dataclasses.asdict(policy_params.spec)
  spec["hidden_sizes"] = list(spec["hidden_sizes"])
  tree = {
      "format": FORMAT,
      "spec": spec,
      "network": jax.tree.map(np.asarray, jax.device_get(policy_params.network)),
      "normalizer": serialization.to_state_dict(jax.device_get(policy_params.normalizer)),
  }
  path = os.fspath(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(serialization.msgpack_serialize(tree))
  os.replace(tmp, path)


def load_policy(path: str | os.PathLike) -> PolicyParams:
  """Reads a file written by :func:`save_policy`.

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file is not a saved policy.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no policy file at {path!r}; write one with "
                            "agents.checkpoint.save_policy(path, policy_params)")
  with open(path, "rb") as f:
    try:
      tree = serialization.msgpack_restore(f.read())
    except Exception as e:  # noqa: BLE001 - any decode error means "not ours"
      raise ValueError(f"{path!r} is not a policy saved by agents.checkpoint.save_policy") from e
  if not isinstance(tree, dict) or tree.get("format") != FORMAT:
    raise ValueError(f"{path!r} is not a policy saved by agents.checkpoint.save_policy "
                     f"(format {FORMAT})")
  s = tree["spec"]
  hidden = s["hidden_sizes"]
  if isinstance(hidden, dict):  # msgpack may hand lists back as {"0": ..}
    hidden = [hidden[k] for k in sorted(hidden, key=int)]
  spec = PolicySpec(obs_size=int(s["obs_size"]), action_size=int(s["action_size"]),
                    hidden_sizes=tuple(int(h) for h in hidden),
                    init_log_std=float(s["init_log_std"]))
  norm = tree["normalizer"]
  normalizer = NormalizerState(mean=jnp.asarray(norm["mean"]), var=jnp.asarray(norm["var"]),
                               count=jnp.asarray(norm["count"]))
  network = jax.tree.map(jnp.asarray, tree["network"])
  return PolicyParams(network=network, normalizer=normalizer, spec=spec)


class CheckpointError(ValueError):
  """No saved train state in a run directory can be read."""


class StateCheckpoints:
  """orbax ``CheckpointManager`` of an agent's ``TrainState``, keyed by its
  ``iteration``; keeps the latest ``max_to_keep``. Each save is atomic (orbax
  writes a temporary directory and renames it when complete), so a run
  killed mid-write resumes from the previous complete checkpoint."""

  def __init__(self, directory: Path, max_to_keep: int = 2):
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    self._ocp = ocp
    self.mngr = ocp.CheckpointManager(
        Path(directory).absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    """The iteration of the latest complete checkpoint, or None."""
    return self.mngr.latest_step()

  def save(self, train_state: Any) -> int:
    """Saves ``train_state`` under its iteration; returns the iteration."""
    step = int(jax.device_get(train_state.iteration))
    self.mngr.save(step, args=self._ocp.args.StandardSave(train_state))
    return step

  def restore(self, template: Any) -> tuple[Any, int, list[str]]:
    """The newest train state that can be read, shaped like ``template``
    (e.g. ``agent.init(env, config, key)``).

    Returns:
      ``(train_state, step, skipped)``: ``skipped`` describes newer
      checkpoints that could not be read (damaged files), if any.

    Raises:
      CheckpointError: no checkpoint can be read; the message names them.
    """
    skipped = []
    for step in sorted(self.mngr.all_steps(), reverse=True):
      try:
        state = self.mngr.restore(step, args=self._ocp.args.StandardRestore(template))
      except Exception as e:  # noqa: BLE001 - any read error means damaged
        skipped.append(f"checkpoint {step} ({type(e).__name__}: {str(e)[:200]})")
        continue
      return state, step, skipped
    raise CheckpointError(
        f"no checkpoint in {self.mngr.directory} can be read: "
        f"{'; '.join(skipped) or 'none saved'}. Delete the damaged step "
        f"directories to resume from an earlier one, or start a new run.")

  def close(self) -> None:
    """Waits for pending writes, then closes the manager."""
    self.mngr.wait_until_finished()
    self.mngr.close()
