"""benchmarks.seeds judges a run from its own files (eval.json, metrics.csv)
and keeps every finished row: the pieces, without training anything."""

from __future__ import annotations

import csv
import math

import pytest

from benchmarks import common, seeds


def _eval(ret, velocity=None, fall_rate=0.0, episodes=10):
  ev = {"return_mean": ret, "fall_rate": fall_rate, "episodes": episodes}
  if velocity is not None:
    ev["forward_velocity_mean"] = velocity
  return ev


def test_stability_is_the_lowest_of_the_last_three_over_the_final():
  assert seeds.stability([100, 50, 900, 800, 1000], 1000) == pytest.approx(0.8)
  assert seeds.stability([400], 800) == pytest.approx(0.5)
  assert math.isnan(seeds.stability([], 800))


def test_periodic_evaluations_are_read_from_metrics_csv(tmp_path):
  path = tmp_path / "metrics.csv"
  with path.open("w", newline="") as f:
    w = csv.DictWriter(f, ["env_steps", "eval/episode_return"])
    w.writeheader()
    w.writerows([{"env_steps": 1, "eval/episode_return": ""},
                 {"env_steps": 2, "eval/episode_return": "10.5"},
                 {"env_steps": 3, "eval/episode_return": ""},
                 {"env_steps": 4, "eval/episode_return": "20"}])
  assert seeds.periodic_evals(path) == [10.5, 20.0]


def test_targets_need_every_condition():
  hopper = seeds.TARGETS["hopper"]
  assert seeds.judge(hopper, _eval(3000, 2.1))
  assert not seeds.judge(hopper, _eval(3000, 1.9))  # too slow
  assert not seeds.judge(hopper, _eval(3000, 2.5, fall_rate=0.1))  # one fall
  assert not seeds.judge(hopper, _eval(3000))  # no velocity recorded
  cartpole = seeds.TARGETS["cartpole_swingup"]
  assert seeds.judge(cartpole, _eval(800.0)) and not seeds.judge(cartpole, _eval(799.9))
  cheetah = seeds.TARGETS["half_cheetah"]  # falls do not count there
  assert seeds.judge(cheetah, _eval(3000, 3.1, fall_rate=0.5))


def test_a_later_row_replaces_the_same_task_and_seed(tmp_path):
  path = tmp_path / "seeds.csv"
  first = [{"task": "hopper", "seed": 1, "return": 1.0},
           {"task": "cartpole_swingup", "seed": 0, "return": 2.0}]
  seeds.merge(path, [])  # no file yet
  common.write_csv(str(path), seeds.FIELDS, seeds.merge(path, first))
  rows = seeds.merge(path, [{"task": "hopper", "seed": 1, "return": 3.0}])
  assert [(r["task"], str(r["seed"]), str(r["return"])) for r in rows] == [
      ("cartpole_swingup", "0", "2.0"), ("hopper", "1", "3.0")]


def test_markdown_counts_successes_and_marks_concurrent_wall_clocks():
  row = dict.fromkeys(seeds.FIELDS, "")
  rows = [
      {**row, "task": "hopper", "seed": "0", "success": "True", "reached": "True",
       "return": "4000", "velocity": "2.5", "falls": "0", "episodes": "10",
       "stability": "0.9", "wall_s": "600", "concurrent": "1"},
      {**row, "task": "hopper", "seed": "1", "success": "False", "reached": "False",
       "return": "1000", "velocity": "1.0", "falls": "3", "episodes": "10",
       "stability": "0.5", "wall_s": "900", "concurrent": "2"},
  ]
  text = seeds.markdown(rows)
  assert "| hopper | >= 2 m/s, <= 0 falls, <= 15 min | 4 of 5 | 1 of 2 |" in text
  assert "10.0 min (seed 0)" in text  # only the run measured alone
  assert "15.0 min (seed 1)" not in text


def test_other_jobs_on_the_machine_count_as_concurrent(tmp_path, monkeypatch):
  """``--others N``: runs of a second invocation make no wall clock a timing."""
  seen = []

  def fake_run_one(task, seed, runs, extra, concurrent, log):
    seen.append(concurrent)
    return {"task": task, "seed": seed, "concurrent": concurrent,
            "success": False, "reached": False, "return": 10.0,
            "velocity": 1.0, "falls": 0, "episodes": 10, "stability": 1.0,
            "wall_s": 60.0}

  monkeypatch.setattr(seeds, "run_one", fake_run_one)
  assert seeds.main(["--tasks", "hopper", "--seeds", "0", "--others", "1",
                     "--out", str(tmp_path), "--runs", str(tmp_path / "r")]) == 0
  assert seen == [2]
  assert [r["concurrent"] for r in common.read_csv(str(tmp_path / "seeds.csv"))] == ["2"]
  with pytest.raises(SystemExit):
    seeds.main(["--tasks", "hopper", "--others", "-1", "--out", str(tmp_path)])
