"""The backend line, the missing-CUDA warning and per-backend preset values.

No GPU is needed: GPU detection and JAX's devices are monkeypatched or passed
in. No JAX compilation happens here.
"""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

import configs
from configs import ConfigError
import envs
from trainlib import rundir, startup


@dataclasses.dataclass
class FakeDevice:
  platform: str
  device_kind: str
  name: str

  def __str__(self):
    return self.name


CPU = [FakeDevice("cpu", "cpu", "TFRT_CPU_0")]
GPU = [FakeDevice("gpu", "NVIDIA H100 80GB HBM3", "cuda:0")]


# --------------------------------------------------------------------------
# backend line and warning
# --------------------------------------------------------------------------


def test_backend_line_names_backend_and_devices():
  assert startup.backend_line(CPU) == "JAX backend: cpu, 1 device: TFRT_CPU_0"
  line = startup.backend_line(GPU * 2)
  assert line.startswith("JAX backend: gpu, 2 devices: cuda:0 (NVIDIA H100")


def test_backend_line_of_the_real_jax():
  import jax
  line = startup.backend_line(jax.devices())
  assert line.startswith(f"JAX backend: {jax.default_backend()}, ")


def test_warns_with_the_install_command_when_jax_misses_a_gpu(monkeypatch):
  monkeypatch.setattr(startup, "system_gpus",
                      lambda: ["GPU 0: NVIDIA H100 (UUID: GPU-1)"])
  printed, warned = [], []
  warning = startup.report_devices(printed.append, warned.append, devices=CPU)
  assert printed == ["JAX backend: cpu, 1 device: TFRT_CPU_0"]
  assert warned == [warning]
  assert "pip install -e '.[cuda]'" in warning and "NVIDIA H100" in warning


@pytest.mark.parametrize("devices, gpus", [(CPU, []), (GPU, ["GPU 0: x"])])
def test_no_warning_without_a_gpu_or_when_jax_uses_it(monkeypatch, devices,
                                                      gpus):
  monkeypatch.setattr(startup, "system_gpus", lambda: gpus)
  printed, warned = [], []
  assert startup.report_devices(printed.append, warned.append, devices=devices) is None
  assert len(printed) == 1 and warned == []


def test_system_gpus_reads_nvidia_smi(monkeypatch):
  def fake_run(cmd, **kwargs):
    assert cmd[-1] == "-L"
    return subprocess.CompletedProcess(cmd, 0, stdout=(
        "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)\n"
        "  MIG 1g.10gb Device 0: (UUID: MIG-0)\n"), stderr="")
  monkeypatch.setattr(startup.shutil, "which", lambda name: "/x/nvidia-smi")
  monkeypatch.setattr(startup.subprocess, "run", fake_run)
  assert startup.system_gpus() == ["GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"]


def test_system_gpus_falls_back_to_device_files(monkeypatch):
  monkeypatch.setattr(startup.shutil, "which", lambda name: None)
  monkeypatch.setattr(startup.os.path, "exists",
                      lambda p: p == "/dev/nvidia0")
  assert startup.system_gpus() == ["/dev/nvidia0"]
  monkeypatch.setattr(startup.os.path, "exists", lambda p: False)
  assert startup.system_gpus() == []


def test_preset_backend():
  assert startup.preset_backend("cpu") == "cpu"
  for platform in ("gpu", "cuda", "rocm", "tpu"):
    assert startup.preset_backend(platform) == "gpu"


def test_train_script_prints_the_backend_line(monkeypatch, capsys, tmp_path,
                                              entry_point):
  """train.py prints the line before anything is compiled (the run itself is
  replaced by a stub)."""
  from trainlib import run as run_lib
  train = entry_point("train")
  monkeypatch.setattr(startup, "system_gpus", lambda: ["GPU 0: Fake"])
  calls = []
  monkeypatch.setattr(startup, "enable_compilation_cache", lambda: None)
  monkeypatch.setattr(run_lib, "train_run",
                      lambda resolved, run_dir, resume: calls.append(resolved))
  assert train.main(["pendulum_swingup", "--no-video",
                     "--run-dir", str(tmp_path / "r")]) == 0
  out, err = capsys.readouterr()
  assert "JAX backend: cpu, 1 device" in out
  assert "pip install -e '.[cuda]'" in err  # the faked GPU is unused
  assert calls and calls[0].backend == "cpu"


# --------------------------------------------------------------------------
# per-backend preset values
# --------------------------------------------------------------------------


def test_per_backend_values_pick_the_backend(write_preset):
  path = write_preset("""
default_agent: shac
env: {episode_length: {cpu: 100, gpu: 1000}}
shac:
  num_envs: {cpu: 16, gpu: 1024}
  num_timesteps: 1_000_000
  seed: {cpu: 1, gpu: 2}
  policy_hidden_sizes: {cpu: [8], gpu: [256, 256]}
""")
  cpu = configs.resolve("pendulum_swingup", path=path, backend="cpu")
  gpu = configs.resolve("pendulum_swingup", path=path, backend="gpu")
  assert (cpu.backend, gpu.backend) == ("cpu", "gpu")
  assert (cpu.agent_config.num_envs, gpu.agent_config.num_envs) == (16, 1024)
  assert cpu.agent_config.num_timesteps == gpu.agent_config.num_timesteps
  assert (cpu.run.seed, gpu.run.seed) == (1, 2)
  assert cpu.agent_config.policy_hidden_sizes == (8,)
  assert gpu.agent_config.policy_hidden_sizes == (256, 256)
  assert (cpu.env_config.episode_length, gpu.env_config.episode_length) == (
      100, 1000)


def test_planned_backend_is_decided_before_jax_and_checked_after(monkeypatch):
  monkeypatch.setenv("JAX_PLATFORMS", "cuda")
  assert startup.planned_backend() == "gpu"
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  assert startup.planned_backend() == "cpu"
  monkeypatch.delenv("JAX_PLATFORMS")
  monkeypatch.setattr(startup, "system_gpus", lambda: ["GPU 0: Fake"])
  monkeypatch.setattr(startup, "_gpu_plugin_installed", lambda: True)
  assert startup.planned_backend() == "gpu"
  monkeypatch.setattr(startup, "_gpu_plugin_installed", lambda: False)
  assert startup.planned_backend() == "cpu"  # no plugin: JAX runs on the CPU
  # a wrong guess is an error naming the fix, not a silent GPU-sized run
  monkeypatch.setattr(startup, "enable_compilation_cache", lambda: None)
  with pytest.raises(ConfigError, match="JAX runs on cpu; set JAX_PLATFORMS=cpu"):
    startup.start(startup.Launch(backend="gpu"), print_fn=lambda _: None)
  startup.start(startup.Launch(backend="cpu"), print_fn=lambda _: None)

@pytest.mark.parametrize("value, message", [
    ("{cpu: 64, tpu: 1}", "Valid keys for a per-backend value: cpu, gpu"),
    ("{cpu: 64, tpu: 1}", "unknown key(s) 'tpu'"),
    ("{cpu: 64, gpus: 1}", "did you mean 'gpu'"),
    ("{gpu: 1024}", "has no 'cpu' entry"),
    ("{cpu: 64, gpu: 2.5}", "expected int"),  # the other backend's too
])
def test_bad_per_backend_values_name_the_fix(write_preset, value, message):
  path = write_preset(f"shac: {{num_envs: {value}}}\n")
  with pytest.raises(ConfigError) as e:
    configs.resolve("pendulum_swingup", path=path, backend="cpu")
  assert "preset.yaml" in str(e.value) and ":shac.num_envs" in str(e.value)
  assert message in str(e.value)


def test_other_backend_values_are_checked_by_the_dataclass(write_preset):
  path = write_preset("shac: {critic_minibatches: {cpu: 4, gpu: 3}}\n")
  with pytest.raises(ConfigError, match=r"preset.yaml \(gpu values\):shac: .*"
                     "critic_minibatches=3 must divide"):
    configs.resolve("pendulum_swingup", path=path, backend="cpu")


def test_unknown_backend_is_an_error():
  with pytest.raises(ConfigError, match="Valid: cpu, gpu"):
    configs.resolve("pendulum_swingup", backend="tpu")


def test_plain_presets_resolve_the_same_on_every_backend():
  for env_name in envs.names():
    for agent in configs.agent_names():
      cpu = configs.resolve(env_name, agent, backend="cpu")
      gpu = configs.resolve(env_name, agent, backend="gpu")
      if env_name == "hopper" and agent == "shac":
        continue  # the one preset with GPU values (below)
      assert dataclasses.replace(gpu, backend="cpu") == cpu, (env_name, agent)


def test_hopper_gpu_values_make_as_many_updates():
  """hopper.yaml's GPU values scale the batch and the budget together: a GPU
  run makes as many updates as a CPU run."""
  cpu = configs.resolve("hopper", "shac", backend="cpu")
  gpu = configs.resolve("hopper", "shac", backend="gpu")
  assert gpu.agent_config.num_envs > cpu.agent_config.num_envs
  assert gpu.agent_config.num_updates == cpu.agent_config.num_updates

def test_config_yaml_records_the_backend_and_holds_plain_values(tmp_path):
  resolved = configs.resolve("hopper", "shac", backend="gpu")
  path = tmp_path / "config.yaml"
  rundir.write_config(path, resolved)
  assert "\nbackend: gpu\n" in path.read_text()
  back = rundir.read_config(path)
  assert back == resolved and back.agent_config.num_envs == 1024
  # a config.yaml from before backends were recorded still reads
  text = path.read_text().replace("backend: gpu\n", "")
  path.write_text(text)
  assert rundir.read_config(path).backend is None
  # resolved configs hold plain values only
  path.write_text(text.replace("num_envs: 1024", "num_envs: {cpu: 1, gpu: 2}"))
  with pytest.raises(ConfigError, match="only allowed in presets"):
    rundir.read_config(path)
  path.write_text(text + "backend: tpu\n")
  with pytest.raises(ConfigError, match="backend must be one of"):
    rundir.read_config(path)
