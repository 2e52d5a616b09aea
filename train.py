#!/usr/bin/env python
"""Train a policy on an MJX task: ``python train.py ENV [--agent shac|apg|sapo|ppo]``.

Every config field is a flag (``python train.py ENV --help`` lists them with
the preset's defaults). The run directory keeps the resolved config, orbax
checkpoints, metrics.csv, TensorBoard events, learning_curve.png, the final
policy, eval.json and video.mp4; ``--resume RUN_DIR`` continues a killed run.
See docs/training.md. Several processes (``jax.distributed``): add
``--coordinator-address HOST:PORT --num-processes N --process-id I`` to each
one's command (docs/agents.md, "Multi-process training").
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainlib import cli, startup


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  startup.prepare(gl=cli.needs_gl(argv))
  state = {"run_dir": None}

  def body() -> int:
    from configs import ConfigError, LaunchError  # pylint: disable=import-outside-toplevel
    from trainlib import rundir, run  # pylint: disable=import-outside-toplevel
    command = cli.parse_train(argv)
    startup.start(command.launch)
    resolved = command.resolved
    if command.launch.processes is not None and command.run_dir is None:
      raise LaunchError(
          "a multi-process run needs --run-dir DIR (or --resume DIR), the "
          "same on every process and on a filesystem they all see")
    run_dir = command.run_dir or rundir.new_run_dir(
        Path("runs"), resolved.env_name, resolved.agent)
    state["run_dir"] = run_dir
    if not command.resume and (Path(run_dir) / "config.yaml").exists():
      raise ConfigError(
          f"{run_dir} already holds a run; continue it with "
          f"`python train.py --resume {run_dir}` or pick another --run-dir")
    startup.barrier("run-dir-checked")  # before process 0 writes it
    run.train_run(resolved, Path(run_dir), resume=command.resume)
    return 0

  return startup.run_entry(body, lambda: (
      f"continue with `python train.py --resume {state['run_dir']}`"
      if state["run_dir"] else "run it again"))


if __name__ == "__main__":
  sys.exit(main())
