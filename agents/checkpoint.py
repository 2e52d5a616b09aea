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
  try:
    with open(tmp, "wb") as f:
      f.write(serialization.msgpack_serialize(tree))
    os.replace(tmp, path)
  except OSError as e:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise CheckpointError(
        f"cannot write {path} ({_one_line(e)}); free space (or fix the "
        f"permissions) and run again") from e


def load_policy(path: str | os.PathLike) -> PolicyParams:
  """Reads a file written by :func:`save_policy`.

  Raises:
    FileNotFoundError: no such file.
    CheckpointError: (a ``ValueError``) the file is damaged (e.g. cut short)
      or not a saved policy; the one-line message names the file and the fix.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no policy file at {path!r}; write one with "
                            "agents.checkpoint.save_policy(path, policy_params)")
  # the fix for a damaged final policy of a train.py run: --resume rewrites it
  # from the run's last checkpoint (and evaluates it)
  fix = (f"if it is a train.py run's policy, write it again from the run's "
         f"last checkpoint with `python train.py --resume "
         f"{os.path.dirname(os.path.abspath(path))}`")
  with open(path, "rb") as f:
    try:
      tree = serialization.msgpack_restore(f.read())
    except Exception as e:  # noqa: BLE001 - any decode error means "not ours"
      raise CheckpointError(f"{path} is damaged or not a policy saved by "
                            f"agents.checkpoint.save_policy ({_one_line(e)}); "
                            f"{fix}") from e
  if not isinstance(tree, dict) or tree.get("format") != FORMAT:
    raise CheckpointError(f"{path} is not a policy saved by "
                          f"agents.checkpoint.save_policy (format {FORMAT}); {fix}")
  try:
    return _policy_from_tree(tree)
  except (KeyError, TypeError, ValueError, AttributeError) as e:
    raise CheckpointError(f"{path} is damaged ({type(e).__name__}: "
                          f"{_one_line(e)}); {fix}") from e


def _one_line(e: BaseException, limit: int = 200) -> str:
  """An exception's message on one line, at most ``limit`` characters."""
  text = " ".join(str(e).split()) or type(e).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."


class _DropOrbaxReadFollowups:
  """``logging`` filter for the ``asyncio`` logger: drops "Task exception was
  never retrieved" reports of orbax's ``async_deserialize`` tasks."""

  def filter(self, record) -> bool:
    message = record.getMessage()
    return not ("Task exception was never retrieved" in message
                and "async_deserialize" in message)


def _quiet_orbax_read_followups() -> None:
  """When orbax fails to read a damaged step, its other pending reads fail
  or complete later, after it has given up, and report themselves on stderr
  with tracebacks: as ``RuntimeError: Event loop is closed`` (an unraisable
  exception) or, when a second array read fails too, as asyncio's "Task
  exception was never retrieved" (logged when the task is collected,
  1 run in about 7 here). The read failure itself is reported once, by
  :meth:`StateCheckpoints.restore`; this drops those follow-ups and nothing
  else."""
  import logging  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  asyncio_log = logging.getLogger("asyncio")
  if not any(isinstance(f, _DropOrbaxReadFollowups) for f in asyncio_log.filters):
    asyncio_log.addFilter(_DropOrbaxReadFollowups())
  hook = sys.unraisablehook
  if getattr(hook, "_drops_closed_loop", False):
    return

  def unraisablehook(info):
    if (info.exc_type is RuntimeError
        and str(info.exc_value) == "Event loop is closed"):
      return
    hook(info)

  unraisablehook._drops_closed_loop = True  # type: ignore[attr-defined]
  sys.unraisablehook = unraisablehook


def _policy_from_tree(tree: dict) -> PolicyParams:
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
  """A saved policy or train state cannot be read or written (damaged file,
  full disk); the message is one line naming the file and the fix."""


def _raise_if_collective(e: BaseException) -> None:
  """Re-raises a failed cross-process collective as it is: in a
  multi-process run a write of sharded state that fails because another
  process died is not a disk problem (``trainlib.startup.abort`` says what
  it is)."""
  if isinstance(e, jax.errors.JaxRuntimeError) or "gloo" in str(e).lower():
    raise e


def _size(x: Any) -> int:
  return int(np.prod(x.shape))


def _sized(leaves: list[Any]) -> list[Any]:
  """The leaves that hold data (orbax refuses to save empty arrays, such as
  an MJX model's constraint arrays when it has no constraint rows)."""
  return [x for x in leaves if _size(x)]


class StateCheckpoints:
  """orbax ``CheckpointManager`` of an agent's ``TrainState`` and the envs'
  state after the same update (``{"train": ..., "env": ...}``), keyed by the
  ``iteration``; keeps the latest ``max_to_keep``. Each save is atomic (orbax
  writes a temporary directory and renames it when complete), so a run
  killed mid-write resumes from the previous complete checkpoint, and a
  resumed run continues exactly as an uninterrupted one."""

  def __init__(self, directory: Path, max_to_keep: int = 2):
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    self._ocp = ocp
    self.mngr = ocp.CheckpointManager(
        Path(directory).absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    """The iteration of the latest complete checkpoint, or None."""
    return self.mngr.latest_step()

  def save(self, train_state: Any, env_carry: Any = None) -> int:
    """Saves ``train_state`` (and ``env_carry``, the envs' state after the
    same update) under its iteration; returns the iteration.

    Raises:
      CheckpointError: this or the previous (asynchronous) write failed,
        e.g. the disk is full; the complete checkpoints are kept.
    """
    step = int(jax.device_get(train_state.iteration))
    try:
      # the envs' state as a flat list of arrays (the leaves of
      # agents.rollout.EnvCarry), restored with the treedef of the run's own
      item = {"train": train_state,
              "env": None if env_carry is None else _sized(jax.tree.leaves(env_carry))}
      self.mngr.save(step, args=self._ocp.args.StandardSave(item))
    except Exception as e:  # noqa: BLE001 - orbax raises ValueError/OSError/...
      _raise_if_collective(e)
      raise self._write_error(e) from e
    return step

  def _write_error(self, e: BaseException) -> CheckpointError:
    """A one-line CheckpointError for a failed write, after the pending
    background writes have ended (they would print their own tracebacks)."""
    import logging  # pylint: disable=import-outside-toplevel
    # orbax's other pending writes fail the same way; asyncio would log each
    # one's traceback ("Task exception was never retrieved")
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
      self.mngr.wait_until_finished()
    except Exception:  # noqa: BLE001 - the same failure, reported below
      pass
    text = _one_line(e, 300)
    full = "no space left on device" in text.lower() or "RESOURCE_EXHAUSTED" in text
    try:
      latest = self.mngr.latest_step()
    except Exception:  # noqa: BLE001
      latest = None
    kept = (f"the last complete checkpoint ({latest}) is kept" if latest is not None
            else "no complete checkpoint was written yet")
    cause = "the disk is full" if full else text
    then = "Free space" if full else "Fix that"
    return CheckpointError(
        f"cannot write a checkpoint in {self.mngr.directory}: {cause}; {kept}. "
        f"{then}, then continue with `python train.py --resume "
        f"{Path(self.mngr.directory).parent}`")

  def restore(self, template: Any, env_template: Any
              ) -> tuple[Any, Any, int, list[str]]:
    """The newest checkpoint that can be read, shaped like ``template``
    (e.g. ``agent.init(env, config, key)``) and ``env_template`` (the envs'
    state: ``agents.loop.abstract_carry``).

    Returns:
      ``(train_state, env_carry, step, skipped)``: ``env_carry`` is None for
      a checkpoint without the envs' state (an older format); ``skipped``
      describes newer checkpoints that could not be read (damaged files), if
      any.

    Raises:
      CheckpointError: no checkpoint can be read; the message names them.
    """
    skipped = []
    damaged = []
    _quiet_orbax_read_followups()
    for step in sorted(self.mngr.all_steps(), reverse=True):
      try:
        item = self._restore(step, template, env_template)
      except Exception as e:  # noqa: BLE001 - any read error means damaged
        damaged.append(str(Path(self.mngr.directory) / str(step)))
        skipped.append(f"checkpoint {damaged[-1]} ({type(e).__name__}: "
                       f"{_one_line(e)})")
        continue
      return item["train"], item.get("env"), step, skipped
    if not damaged:
      raise CheckpointError(f"no checkpoint saved in {self.mngr.directory}")
    raise CheckpointError(
        f"no checkpoint in {self.mngr.directory} can be read (damaged: "
        f"{', '.join(damaged)}; {skipped[0]}). Delete the damaged step "
        f"directories (`rm -r {' '.join(damaged)}`) to start this run over "
        f"from update 0 with --resume, or start a new run.")

  def _restore(self, step: int, template: Any, env_template: Any) -> dict:
    """``{"train": ..., "env": ...}`` of checkpoint ``step``; "env" is
    missing for a checkpoint of the format before the envs' state was saved
    (the train state alone at the top)."""
    def restore(item):
      return self.mngr.restore(step, args=self._ocp.args.StandardRestore(item))
    try:
      leaves, treedef = jax.tree.flatten(env_template)
      item = restore({"train": template, "env": _sized(leaves)})
      saved = iter(item["env"])
      return {"train": item["train"], "env": jax.tree.unflatten(treedef, [
          next(saved) if _size(x) else jnp.zeros(x.shape, x.dtype)
          for x in leaves])}
    except Exception as e:  # noqa: BLE001 - the older format, or damaged
      try:
        return {"train": restore(template)}
      except Exception:  # noqa: BLE001 - report the first error
        raise e from None

  def close(self) -> None:
    """Waits for pending writes, then closes the manager.

    Raises:
      CheckpointError: a pending write failed (e.g. the disk is full).
    """
    try:
      self.mngr.wait_until_finished()
    except Exception as e:  # noqa: BLE001 - as in save
      _raise_if_collective(e)
      raise self._write_error(e) from e
    self.mngr.close()
