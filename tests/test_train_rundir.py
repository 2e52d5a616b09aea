"""Run-directory resilience without training: a damaged metrics.csv tail and a
half-written orbax checkpoint (what a run killed mid-write leaves behind).

No XLA compile of the physics or the agents happens here; the end-to-end
versions (a killed train.py resumed over the same damage) are in
tests/test_train_cli.py.
"""

from __future__ import annotations

import csv
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from agents import checkpoint
from trainlib import rundir


def _write_rows(path, rows, tail=""):
  keys = list(rows[0])
  with path.open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    f.write(tail)


@pytest.mark.parametrize("tail", [
    "48,1.5,0.2",                 # cut in the middle of a row (no newline)
    "4\x00\x00\x00\n",            # block of zeros a crash can leave
    "\xff\xfe garbage,,\n",       # undecodable bytes
    "not-a-step,1,2\n48,1.",      # a bad env_steps value, then a cut row
])
def test_metrics_log_resumes_over_a_damaged_tail(tmp_path, tail):
  paths = rundir.RunPaths(tmp_path)
  good = [{"env_steps": 16 * i, "wall_s": 1.0 * i, "train/episode_return": 0.5 * i}
          for i in (1, 2, 3)]
  _write_rows(paths.metrics, good, tail)
  log = rundir.MetricsLog(paths, resume=True)
  # the good rows are read back (a cut numeric tail may parse as a row, but
  # the first new row drops everything at or after its env step)
  assert [r["env_steps"] for r in log.rows][:3] == [16, 32, 48]
  # resume from the checkpoint at env step 32: row 48 and the damage go
  log.log(48, {"train/episode_return": 9.0, "train/compile_s": 0.5})
  log.log(64, {"train/episode_return": 10.0})
  log.close()
  rows = list(csv.DictReader(paths.metrics.open()))
  assert [int(r["env_steps"]) for r in rows] == [16, 32, 48, 64]
  assert [float(r["train/episode_return"]) for r in rows] == [0.5, 1.0, 9.0, 10.0]
  # wall time continues from the last kept row
  assert float(rows[2]["wall_s"]) >= 2.0
  assert "\x00" not in paths.metrics.read_text()


def test_metrics_log_keeps_everything_before_the_first_new_row(tmp_path):
  paths = rundir.RunPaths(tmp_path)
  _write_rows(paths.metrics, [{"env_steps": 8 * i, "wall_s": i, "x": i}
                              for i in range(1, 6)])
  log = rundir.MetricsLog(paths, resume=True)
  log.log(24, {"x": 30.0})
  log.close()
  rows = list(csv.DictReader(paths.metrics.open()))
  assert [(int(r["env_steps"]), float(r["x"])) for r in rows] == [
      (8, 1.0), (16, 2.0), (24, 30.0)]


@struct.dataclass
class _State:
  iteration: jnp.ndarray
  w: jnp.ndarray


def _half_written_copy(done, tmp):
  """``tmp``: a copy of the finished checkpoint ``done`` as a killed orbax
  save leaves it: under orbax's temporary name, no metadata, arrays cut."""
  shutil.copytree(done, tmp)
  for p in sorted(tmp.rglob("*")):
    if p.is_file():
      if "METADATA" in p.name.upper():
        p.unlink()
      else:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


# the envs' state; an empty array (an MJX model without constraint rows has
# some) is not written by orbax, and comes back from the template
ENV_TEMPLATE = {"x": jax.ShapeDtypeStruct((2,), jnp.float32),
                "empty": jax.ShapeDtypeStruct((0, 3), jnp.float32)}


def _env(value: float) -> dict:
  return {"x": jnp.full(2, value), "empty": jnp.zeros((0, 3))}


def _checkpoints_at_2_and_4(tmp_path):
  """A checkpoint directory holding updates 2 and 4 (``w`` = the update)."""
  ckpt_dir = tmp_path / "checkpoints"
  ckpts = checkpoint.StateCheckpoints(ckpt_dir)
  for it in (2, 4):
    ckpts.save(_State(iteration=jnp.int32(it), w=jnp.full(3, float(it))),
               _env(float(it)))
  ckpts.close()
  return ckpt_dir


def test_checkpoints_skip_a_half_written_step(tmp_path):
  ckpt_dir = _checkpoints_at_2_and_4(tmp_path)
  assert sorted(p.name for p in ckpt_dir.iterdir()) == ["2", "4"]
  # the save of update 6 was killed while orbax was writing it
  _half_written_copy(ckpt_dir / "4", ckpt_dir / "6.orbax-checkpoint-tmp-1764270000123456")

  ckpts = checkpoint.StateCheckpoints(ckpt_dir)
  assert ckpts.latest_step() == 4
  restored, env, step, skipped = ckpts.restore(
      _State(iteration=jnp.int32(0), w=jnp.zeros(3)), ENV_TEMPLATE)
  assert (step, skipped) == (4, [])
  assert int(restored.iteration) == 4
  np.testing.assert_array_equal(np.asarray(restored.w), 4.0)
  np.testing.assert_array_equal(np.asarray(env["x"]), 4.0)  # the envs' state too
  assert env["empty"].shape == (0, 3)
  # and the run goes on: the next save at update 6 succeeds
  ckpts.save(_State(iteration=jnp.int32(6), w=jnp.full(3, 6.0)), _env(6.0))
  ckpts.close()
  ckpts = checkpoint.StateCheckpoints(ckpt_dir)
  assert ckpts.latest_step() == 6
  ckpts.close()


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
  ckpt_dir = _checkpoints_at_2_and_4(tmp_path)
  for p in (ckpt_dir / "4").rglob("*"):  # every file of update 4 cut short
    if p.is_file():
      p.write_bytes(p.read_bytes()[:10])
  ckpts = checkpoint.StateCheckpoints(ckpt_dir)
  restored, _, step, skipped = ckpts.restore(
      _State(iteration=jnp.int32(0), w=jnp.zeros(3)), ENV_TEMPLATE)
  ckpts.close()
  assert step == 2 and int(restored.iteration) == 2
  np.testing.assert_array_equal(np.asarray(restored.w), 2.0)
  assert len(skipped) == 1 and skipped[0].startswith(f"checkpoint {ckpt_dir / '4'} ")
