#!/usr/bin/env python
"""Evaluate a trained run: ``python evaluate.py RUN_DIR [--episodes N]``.

Runs the run's final policy deterministically, prints the return mean ± std
and writes eval.json and video.mp4 into RUN_DIR. See docs/training.md.
"""

from __future__ import annotations

import os
import sys

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

  from configs import ConfigError  # pylint: disable=import-outside-toplevel
  from trainlib import cache, cli, evaluation, portable  # pylint: disable=import-outside-toplevel

  try:
    if portable.requested(argv):  # the run was trained with it: evaluate alike
      portable.enable()
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  args = cli.parse_evaluate_args(argv)
  cli.import_envs_quietly()
  try:
    if args.video:
      headless.configure().require()
    cache.enable_compilation_cache()
    result = evaluation.evaluate_run(args.run_dir, episodes=args.episodes,
                                     video=args.video, seed=args.seed)
  except (ConfigError, FileNotFoundError,
          headless.RenderingUnavailableError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(evaluation.summary_line(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
