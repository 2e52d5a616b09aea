"""Presets, config validation and the generated train.py command line.

No JAX compilation happens here: these tests only build dataclasses.
"""

from __future__ import annotations

import dataclasses

import pytest

import agents
import configs
import envs
from agents import ppo
from configs import ConfigError, RenderConfig, RunConfig
from trainlib import cli, rundir


@pytest.mark.parametrize("env_name", envs.names())
def test_every_env_has_a_valid_preset_for_every_agent(env_name):
  assert configs.resolve(env_name, backend="cpu").agent in ("shac", "apg")
  for agent in agents.ALGORITHMS:
    r = configs.resolve(env_name, agent, backend="cpu")
    assert isinstance(r.agent_config, agents.algorithm(agent).config_class)
    assert isinstance(r.env_config, type(envs.default_config(env_name)))
    assert isinstance(r.render, RenderConfig)
    assert r.agent_config.num_timesteps > 0


def test_preset_values_override_dataclass_defaults(write_preset):
  path = write_preset("""
default_agent: apg
env: {episode_length: 200}
render: {width: 160, track: fixed}
apg: {num_timesteps: 4096, learning_rate: 3e-4, policy_hidden_sizes: [16, 8], seed: 7}
""")
  r = configs.resolve("pendulum_swingup", path=path, backend="cpu")
  assert r.agent == "apg"
  assert r.env_config.episode_length == 200
  assert r.render.width == 160 and r.render.track == "fixed"
  # "3e-4" is a string in YAML 1.1; it is accepted for a float field.
  assert r.agent_config.learning_rate == pytest.approx(3e-4)
  assert r.agent_config.policy_hidden_sizes == (16, 8)
  assert r.agent_config.num_timesteps == 4096
  assert r.run.seed == 7


def test_unknown_agent_key_names_the_valid_keys(write_preset):
  path = write_preset("default_agent: shac\nshac: {learning_rte: 0.1}\n")
  with pytest.raises(ConfigError) as e:
    configs.resolve("pendulum_swingup", path=path, backend="cpu")
  msg = str(e.value)
  assert "learning_rte" in msg and "preset.yaml:shac" in msg
  assert "did you mean 'learning_rate'" in msg
  # lists both the agent's fields and the run's fields
  assert "critic_learning_rate" in msg and "checkpoint_every" in msg


def test_unknown_env_key_and_render_key_are_errors(write_preset):
  path = write_preset("default_agent: shac\nenv: {episode_lenght: 5}\n")
  with pytest.raises(ConfigError, match="episode_length"):
    configs.resolve("pendulum_swingup", path=path, backend="cpu")
  path = write_preset("default_agent: shac\nrender: {colour: red}\n")
  with pytest.raises(ConfigError, match="Valid keys for RenderConfig: .*width"):
    configs.resolve("pendulum_swingup", path=path, backend="cpu")


def test_unknown_top_level_key_and_default_agent(write_preset):
  path = write_preset("default_agent: shac\nsac: {}\n")
  with pytest.raises(ConfigError, match="unknown key.*sac.*Valid keys for the top level"):
    configs.resolve("pendulum_swingup", path=path, backend="cpu")
  path = write_preset("default_agent: shacc\n")
  with pytest.raises(ConfigError, match="Did you mean 'shac'"):
    configs.resolve("pendulum_swingup", path=path, backend="cpu")


@pytest.mark.parametrize("old, new", sorted(
    __import__("agents.config", fromlist=["RENAMED"]).RENAMED.items()))
def test_old_key_and_flag_names_name_the_new_one(write_preset, old, new):
  agent = "ppo" if old.endswith("layer_sizes") else "shac"
  path = write_preset(f"default_agent: {agent}\n{agent}: {{{old}: 1}}\n")
  with pytest.raises(ConfigError, match=f"'{old}' was renamed to '{new}'"):
    configs.resolve("pendulum_swingup", path=path, backend="cpu")
  flag = "--" + old.replace("_", "-")
  with pytest.raises(ConfigError, match=f"{flag} was renamed to --"
                     + new.replace("_", "-")):
    cli.parse_train(["pendulum_swingup", "--agent", agent, flag, "8"])


@pytest.mark.parametrize("section, value, expected", [
    ("shac: {num_envs: 2.5}", "num_envs", "expected int"),
    ("shac: {normalize_observations: 'yes'}", "normalize_observations",
     "expected bool"),
    ("shac: {adam_betas: [0.9]}", "adam_betas", "expected tuple[float, float]"),
    ("shac: {gamma: fast}", "gamma", "expected float"),
    ("shac: {gamma: 1.5}", "gamma", "gamma must be in"),
    ("render: {track: sideways}", "track", "expected one of"),
])
def test_bad_values_name_the_field_and_the_expected_type(write_preset, section,
                                                         value, expected):
  path = write_preset(f"default_agent: shac\n{section}\n")
  with pytest.raises(ConfigError) as e:
    configs.resolve("pendulum_swingup", path=path, backend="cpu")
  assert value in str(e.value) and expected in str(e.value)


def test_unknown_env_and_agent_suggest_close_names():
  with pytest.raises(ConfigError, match="Did you mean 'cartpole_swingup'"):
    configs.check_env_name("cartpole_swingp")
  with pytest.raises(ConfigError, match="Did you mean 'apg'"):
    configs.check_agent("apgg")
  with pytest.raises(ValueError, match="Valid agents: shac, apg, sapo, ppo"):
    agents.algorithm("sac")


def test_run_config_and_ppo_config_checks():
  with pytest.raises(ConfigError, match="eval_episodes"):
    RunConfig(eval_episodes=0)
  with pytest.raises(ValueError, match="multiple of num_envs"):
    ppo.Config(num_envs=48, batch_size=10, num_minibatches=1)


def test_cli_overrides_every_kind_of_field():
  req = cli.parse_train([
      "pendulum_swingup", "--agent", "apg", "--num-timesteps", "4096",
      "--seed", "3", "--policy-hidden-sizes", "8", "8", "--env.episode-length",
      "100", "--render.width", "64", "--no-video", "--run-dir", "/tmp/x"])
  r = req.resolved
  assert r.agent == "apg" and r.env_name == "pendulum_swingup"
  assert r.agent_config.num_timesteps == 4096
  assert r.agent_config.policy_hidden_sizes == (8, 8)
  assert r.run.seed == 3 and r.run.video is False
  assert r.env_config.episode_length == 100
  assert r.render.width == 64
  assert str(req.run_dir) == "/tmp/x"


def test_cli_defaults_come_from_the_preset():
  req = cli.parse_train(["cartpole_swingup"])
  preset = configs.resolve("cartpole_swingup", backend="cpu")
  assert req.resolved == preset
  assert req.resolved.agent == "shac"  # the preset's default_agent


@pytest.mark.parametrize("agent", list(agents.ALGORITHMS))
def test_help_lists_every_config_field_with_its_default(agent, capsys):
  with pytest.raises(SystemExit) as e:
    cli.parse_train(["hopper", "--agent", agent, "--help"])
  assert e.value.code == 0
  out = capsys.readouterr().out
  r = configs.resolve("hopper", agent, backend="cpu")
  groups = [(r.run, ""), (r.agent_config, ""), (r.env_config, "env."),
            (r.render, "render.")]
  for config, prefix in groups:
    for f in dataclasses.fields(config):
      flag = "--" + prefix + f.name.replace("_", "-")
      assert flag in out, f"{flag} missing from --help"
  for flag in ("--agent", "--run-dir", "--resume", "ENV"):
    assert flag in out
  assert out.count("(default:") >= sum(len(dataclasses.fields(c))
                                       for c, _ in groups)


def test_cli_errors(capsys, tmp_path):
  with pytest.raises(ConfigError, match="missing ENV"):
    cli.parse_train([])
  with pytest.raises(ConfigError, match="Did you mean 'hopper'"):
    cli.parse_train(["hoper"])
  with pytest.raises(ConfigError, match="only --num-timesteps may change"):
    cli.parse_train(["--resume", "runs/x", "--seed", "3"])
  with pytest.raises(ConfigError, match="is .*a run directory written by"):
    cli.parse_train(["--resume", str(tmp_path / "nothing")])
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  rundir.write_config(run_dir / "config.yaml",
                      configs.resolve("pendulum_swingup", "shac", backend="cpu"))
  req = cli.parse_train(["--resume", str(run_dir), "--num-timesteps", "1e6"])
  assert req.resume and req.run_dir == run_dir
  assert req.resolved.agent_config.num_timesteps == 1_000_000
  with pytest.raises(SystemExit):  # tyro prints the bad flag and the choices
    cli.parse_train(["hopper", "--num-envz", "3"])
  assert "--num-envz" in capsys.readouterr().err


def test_train_script_reports_bad_input_without_a_traceback(capsys, entry_point):
  train = entry_point("train")
  assert train.main(["cartpole_swingp", "--no-video"]) == 2
  err = capsys.readouterr().err
  assert "Did you mean 'cartpole_swingup'" in err and "Traceback" not in err
  with pytest.raises(SystemExit) as e:  # tyro reports the dataclass's check
    train.main(["hopper", "--no-video", "--gamma", "7"])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert "gamma must be in (0, 1], got 7.0" in err and "Traceback" not in err
