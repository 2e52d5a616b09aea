"""Command lines of train.py and evaluate.py, generated from the dataclasses.

``train.py ENV [--agent A] [flags]``: ENV and ``--agent`` are read first to
pick the preset (``configs/<ENV>.yaml``) and the agent's config dataclass;
then tyro builds the parser from ``RunConfig``, the agent's ``Config``, the
env's config (``--env.*``) and ``RenderConfig`` (``--render.*``), with the
preset's values as defaults. No flag is written by hand except ENV,
``--agent``, ``--run-dir`` and ``--resume``, which are not config fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Literal

import configs
from configs import ConfigError, Resolved

__all__ = ["TrainRequest", "parse_train_args", "parse_evaluate_args"]

HELP_ENV = "cartpole_swingup"  # whose options `train.py --help` shows


@dataclasses.dataclass(frozen=True)
class TrainRequest:
  """What train.py was asked to do."""
  resolved: Resolved | None
  run_dir: Path | None
  resume: Path | None = None
  num_timesteps: int | None = None


def import_envs_quietly():
  """Imports ``envs``, hiding import-time prints of optional MJX backends
  ("Failed to import warp" is expected on CPU)."""
  import contextlib  # pylint: disable=import-outside-toplevel
  import io  # pylint: disable=import-outside-toplevel
  with contextlib.redirect_stdout(io.StringIO()):
    import envs  # pylint: disable=import-outside-toplevel,unused-import
  return envs


def _preparse(argv: list[str]) -> argparse.Namespace:
  p = argparse.ArgumentParser(add_help=False)
  p.add_argument("env", nargs="?")
  p.add_argument("--agent")
  p.add_argument("--resume")
  p.add_argument("--num-timesteps", "--num_timesteps", dest="num_timesteps")
  p.add_argument("-h", "--help", action="store_true")
  ns, _ = p.parse_known_args(argv)
  return ns


def cli_type(resolved: Resolved, env_names: list[str]) -> type:
  """The tyro dataclass for ``resolved.env_name`` / ``resolved.agent``."""
  import tyro  # pylint: disable=import-outside-toplevel
  agent_cls = type(resolved.agent_config)
  env_cls = type(resolved.env_config)
  render_cls = type(resolved.render)
  fields = [
      ("env_name", Annotated[Literal[tuple(env_names)],  # type: ignore[misc]
                             tyro.conf.Positional,
                             tyro.conf.arg(metavar="ENV",
                                           help="task to train.")]),
      ("agent", Annotated[Literal[configs.agent_names()],  # type: ignore[misc]
                          tyro.conf.arg(help=(
                              "algorithm (default: the preset's best of "
                              "SHAC/APG; ppo = Brax PPO baseline)."))],
       dataclasses.field(default=resolved.agent)),
      ("run_dir", Annotated[Path | None, tyro.conf.arg(help=(
          "run directory (default: runs/<env>-<agent>-<timestamp>)."))],
       dataclasses.field(default=None)),
      ("resume", Annotated[Path | None, tyro.conf.arg(
          metavar="RUN_DIR", help=(
              "continue a killed run from its last checkpoint, with its saved "
              "config (only --num-timesteps may change)."))],
       dataclasses.field(default=None)),
      ("run", Annotated[configs.RunConfig, tyro.conf.OmitArgPrefixes],
       dataclasses.field(default=resolved.run)),
      ("config", Annotated[agent_cls, tyro.conf.OmitArgPrefixes,
                           tyro.conf.arg(name=resolved.agent)],
       dataclasses.field(default=resolved.agent_config)),
      ("env", Annotated[env_cls, tyro.conf.arg(name="env")],
       dataclasses.field(default=resolved.env_config)),
      ("render", Annotated[render_cls, tyro.conf.arg(name="render")],
       dataclasses.field(default=resolved.render)),
  ]
  return dataclasses.make_dataclass("train", fields, frozen=True)


def _check_renamed_flags(argv: list[str]) -> None:
  """Raises ConfigError naming the new flag for a flag renamed when the
  agents' configs were unified (``agents.config.RENAMED``)."""
  from agents.config import RENAMED  # pylint: disable=import-outside-toplevel
  for arg in argv:
    name = arg.split("=", 1)[0]
    if not name.startswith("--"):
      continue
    old = name[2:].replace("-", "_")
    if old in RENAMED:
      new = "--" + RENAMED[old].replace("_", "-")
      raise ConfigError(f"{name} was renamed to {new}; use {new}")


def parse_train_args(argv: list[str] | None = None) -> TrainRequest:
  """Parses train.py's command line.

  Raises:
    ConfigError: unknown env/agent (closest names suggested), invalid preset,
      or a value a config dataclass rejects.
    SystemExit: --help, or a flag tyro cannot parse (tyro prints why).
  """
  import tyro  # pylint: disable=import-outside-toplevel
  envs = import_envs_quietly()
  argv = list(sys.argv[1:] if argv is None else argv)
  pre = _preparse(argv)

  if pre.resume and not pre.help:
    allowed = {"--resume", "--num-timesteps", "--num_timesteps"}
    extra = [a for a in argv if a.startswith("--")
             and a.split("=")[0] not in allowed]
    if extra:
      raise ConfigError(
          f"--resume continues a run with its saved config; only "
          f"--num-timesteps may change, got {extra}. Start a new run to "
          f"change other settings.")
    n = None
    if pre.num_timesteps is not None:
      try:
        n = int(float(pre.num_timesteps))
      except ValueError:
        raise ConfigError(f"--num-timesteps must be an integer, got "
                          f"{pre.num_timesteps!r}") from None
    return TrainRequest(resolved=None, run_dir=Path(pre.resume),
                        resume=Path(pre.resume), num_timesteps=n)

  env_names = list(envs.names())
  env_name = pre.env
  if env_name is None or env_name.startswith("-"):
    if not pre.help:
      raise ConfigError(
          f"missing ENV: python train.py ENV [--agent shac|apg|ppo] ...; "
          f"ENV is one of {', '.join(env_names)}")
    env_name = HELP_ENV
  configs.check_env_name(env_name)
  if pre.agent is not None:
    configs.check_agent(pre.agent)
  _check_renamed_flags(argv)
  resolved = configs.resolve(env_name, pre.agent)
  tp = cli_type(resolved, env_names)
  description = (
      f"Train a policy on an MJX task and evaluate it. Options and defaults "
      f"below are those of ENV={env_name} with --agent {resolved.agent} "
      f"(from configs/{env_name}.yaml); run `train.py ENV --agent A --help` "
      f"to see another preset.")
  try:
    args = tyro.cli(tp, args=argv, description=description)
  except (ValueError, TypeError) as e:
    raise ConfigError(str(e)) from e
  if args.agent != resolved.agent:  # pragma: no cover - preparse handles it
    resolved = configs.resolve(env_name, args.agent)
  resolved = dataclasses.replace(resolved, run=args.run,
                                 agent_config=args.config,
                                 env_config=args.env, render=args.render)
  return TrainRequest(resolved=resolved, run_dir=args.run_dir)


def _metavar(name: str):
  import tyro  # pylint: disable=import-outside-toplevel
  return tyro.conf.arg(metavar=name)


@dataclasses.dataclass(frozen=True)
class EvaluateArgs:
  """Evaluate a run's final policy: prints return mean ± std and writes
  eval.json and video.mp4 into the run directory.

  Attributes:
    run_dir: a run directory written by train.py.
    episodes: evaluation episodes (default: the run's eval_episodes).
    video: render video.mp4 of the first episode.
    seed: PRNG seed of the episodes' initial states.
  """
  run_dir: Annotated[Path, _metavar("RUN_DIR")]
  episodes: int | None = None
  video: bool = True
  seed: int = 1_000_003


def parse_evaluate_args(argv: list[str] | None = None) -> EvaluateArgs:
  """Parses evaluate.py's command line (RUN_DIR positional)."""
  import tyro  # pylint: disable=import-outside-toplevel
  tp = Annotated[EvaluateArgs, tyro.conf.PositionalRequiredArgs]
  return tyro.cli(tp, args=argv)
