#!/usr/bin/env python
"""Train a policy on an MJX task: ``python train.py ENV [--agent shac|apg|ppo]``.

Every config field is a flag (``python train.py ENV --help`` lists them with
the preset's defaults). The run directory keeps the resolved config, orbax
checkpoints, metrics.csv, TensorBoard events, learning_curve.png, the final
policy, eval.json and video.mp4; ``--resume RUN_DIR`` continues a killed run.
See docs/training.md. Several processes (``jax.distributed``): add
``--coordinator-address HOST:PORT --num-processes N --process-id I`` to each
one's command (docs/agents.md, "Multi-process training").
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

# Loading executables from JAX's persistent compilation cache makes XLA:CPU
# log spurious "machine feature +prefer-no-gather" errors; hide XLA's C++ logs
# unless the user asked for them (must be set before jaxlib loads).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Chosen before anything imports mujoco (see trainlib/headless.py).
from trainlib import headless  # pylint: disable=wrong-import-position


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not ({"-h", "--help", "--no-video"} & set(argv)):
    headless.configure()

  from agents.checkpoint import CheckpointError  # pylint: disable=import-outside-toplevel
  from configs import ConfigError  # pylint: disable=import-outside-toplevel
  from trainlib import cache, cli, device, distributed, portable, rundir, run  # pylint: disable=import-outside-toplevel

  run_dir = None
  launch = None
  try:
    # before anything starts JAX's backend (resolving a preset does)
    launch, argv = distributed.parse(argv)
    if portable.requested(argv):
      portable.enable()
    if launch is not None:
      distributed.initialize(launch)
    request = cli.parse_train_args(argv)
    device.report()  # backend line; warns when a GPU is left unused
    if launch is not None:
      print(distributed.process_line())
      if request.run_dir is None:
        raise distributed.LaunchError(
            "a multi-process run needs --run-dir DIR (or --resume DIR), the "
            "same on every process and on a filesystem they all see")
    if request.resume is not None:
      paths = rundir.RunPaths(request.resume)
      resolved = rundir.read_config(paths.config)
      if request.num_timesteps is not None:
        resolved = dataclasses.replace(
            resolved, agent_config=dataclasses.replace(
                resolved.agent_config, num_timesteps=request.num_timesteps))
      run_dir, resume = request.resume, True
    else:
      resolved, resume = request.resolved, False
      run_dir = request.run_dir or rundir.new_run_dir(
          Path("runs"), resolved.env_name, resolved.agent)
      if (Path(run_dir) / "config.yaml").exists():
        raise ConfigError(
            f"{run_dir} already holds a run; continue it with "
            f"`python train.py --resume {run_dir}` or pick another --run-dir")
    distributed.barrier("run-dir-checked")  # before process 0 writes it
    if resolved.run.portable_determinism:
      portable.enable()  # checks that it took effect (e.g. set by a preset)
    if resolved.run.video:
      headless.configure().require()
    cache.enable_compilation_cache()
    run.train_run(resolved, Path(run_dir), resume=resume)
  except (ConfigError, CheckpointError, FileNotFoundError,
          headless.RenderingUnavailableError) as e:
    if launch is not None:  # don't wait for the other processes
      distributed.fail(str(e), status=2)
    print(f"error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    message = (f"\ninterrupted; continue with `python train.py --resume "
               f"{run_dir}`")
    if launch is not None:
      distributed.fail(message, status=130)
    print(message, file=sys.stderr)
    return 130
  except Exception as e:  # pylint: disable=broad-except
    if launch is not None:
      distributed.abort(e)
    raise
  return 0


if __name__ == "__main__":
  sys.exit(main())
