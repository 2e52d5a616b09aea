#!/usr/bin/env python
"""Evaluate a trained run: ``python evaluate.py RUN_DIR [--episodes N]``.

Runs the run's final policy deterministically, prints the return mean ± std
and writes eval.json and video.mp4 into RUN_DIR. A run trained with
``--portable-determinism`` is evaluated with it too. See docs/training.md.
"""

from __future__ import annotations

import sys

from trainlib import cli, startup


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  startup.prepare(gl=cli.needs_gl(argv))

  def body() -> int:
    from trainlib import run  # pylint: disable=import-outside-toplevel
    command = cli.parse_evaluate(argv)
    startup.start(command.launch)
    args = command.args
    result = run.evaluate_run(args.run_dir, episodes=args.episodes,
                              video=args.video, seed=args.seed,
                              resolved=command.resolved)
    print(run.summary_line(result))
    return 0

  return startup.run_entry(body, lambda: "run it again")


if __name__ == "__main__":
  sys.exit(main())
