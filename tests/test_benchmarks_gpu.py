"""benchmarks.gpu runs end to end on a CPU in --tiny mode.

The tiny mode uses pendulum_swingup (the cheapest env to compile), B=2, T=2
and a 2-second SHAC run, so the numbers mean nothing; the test checks that
every section of the table is filled. nvidia-smi is faked to be absent for
the end-to-end run and faked to answer for the memory poller.
"""

from __future__ import annotations

import re
import subprocess

import pytest


@pytest.fixture(scope="module")
def gpu_bench():
  from benchmarks import gpu  # pylint: disable=import-outside-toplevel
  return gpu


def test_memory_poller_keeps_the_peak_over_gpus(gpu_bench, monkeypatch):
  answers = iter(["100\n200\n", "50\n400\n", "garbage\n", "10\n10\n"])

  def fake_run(cmd, **kwargs):
    assert cmd[1:] == list(gpu_bench.GpuMemory.QUERY)
    return subprocess.CompletedProcess(cmd, 0, stdout=next(answers), stderr="")

  monkeypatch.setattr(gpu_bench, "which_nvidia_smi", lambda: "/x/nvidia-smi")
  monkeypatch.setattr(gpu_bench.subprocess, "run", fake_run)
  memory = gpu_bench.GpuMemory()
  for _ in range(4):
    memory.poll()
  assert memory.peak_mib == 450.0


def test_memory_poller_without_nvidia_smi(gpu_bench, monkeypatch):
  monkeypatch.setattr(gpu_bench, "which_nvidia_smi", lambda: None)
  with gpu_bench.GpuMemory() as memory:
    pass
  assert memory.peak_mib is None and memory.read() is None


@pytest.mark.slow  # ~2 min on the loaded 2-core CPU with a cold cache
def test_tiny_mode_prints_every_section(gpu_bench, monkeypatch, capsys):
  monkeypatch.setattr(gpu_bench, "which_nvidia_smi", lambda: None)
  monkeypatch.setattr(gpu_bench.common, "system_gpus", lambda: [])
  report = gpu_bench.main(["--tiny"])
  assert report in capsys.readouterr().out
  assert report.startswith("JAX backend: cpu")
  row = re.search(r"\| pendulum_swingup \| 2 \| ([\d,]+) \| ([\d,]+) \| "
                  r"([\d,]+) \| (\d+) \|", report)
  assert row, report
  assert all(float(v.replace(",", "")) > 0 for v in row.groups()[:3])
  shac = re.search(r"\| ([\d.]+) \| ([\d.]+) \| ([\d,]+) \| (\d+) \| (\d+) \| "
                   r"(-?[\d.]+|n/a) \| (-?[\d.]+) \| n/a \|", report)
  assert shac, report
  assert int(shac.group(4)) >= 2  # the compiling update and at least one more
  assert float(shac.group(2)) > 0
  assert "skipped (nvidia-smi not found)" in report
  assert "backend 'cpu'" in report


def test_physics_rows_past_the_time_budget_are_skipped(gpu_bench,
                                                      monkeypatch):
  """A zero budget runs no row (nothing is compiled)."""
  import dataclasses
  sizes = dataclasses.replace(gpu_bench.TINY, physics_seconds=-1.0,
                              batches=(2, 4))
  rows = gpu_bench.physics_rows(sizes, log=lambda s: None)
  assert [r["skipped"] for r in rows] == [True, True]
