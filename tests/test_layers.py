"""Imports run one way: envs <- agents <- configs <- trainlib <- train.py /
evaluate.py (benchmarks/ may use them all), and no two modules import each
other, directly or around a cycle.

The graph is read from the source (every ``import``, also those inside
functions), so the test compiles nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# lower layers first; a module may import its own layer and the ones before
LAYERS = ("envs", "agents", "configs", "trainlib", "train", "evaluate")
PACKAGES = (*LAYERS, "benchmarks")


def _module_name(path: Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def _modules() -> dict[str, Path]:
  found = {}
  for top in PACKAGES:
    if (ROOT / f"{top}.py").exists():
      found[top] = ROOT / f"{top}.py"
    for path in sorted((ROOT / top).rglob("*.py")) if (ROOT / top).is_dir() else ():
      found[_module_name(path)] = path
  return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
  """module -> the project modules it imports (``from a import b`` counts as
  importing ``a.b`` when that is a module, else ``a``)."""
  graph: dict[str, set[str]] = {}
  for name, path in modules.items():
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}"
                 in modules else node.module for alias in node.names]
      else:
        continue
      for target in names:
        while target and target not in modules:  # a.b.c -> a.b -> a
          target = target.rpartition(".")[0]
        if target and target != name:
          targets.add(target)
    graph[name] = targets
  return graph


def _layer(module: str) -> int | None:
  top = module.split(".")[0]
  return LAYERS.index(top) if top in LAYERS else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
  """``a -> b`` for every import of a higher layer by a lower one."""
  bad = []
  for src, targets in graph.items():
    for dst in targets:
      if (_layer(src) is not None and _layer(dst) is not None
          and _layer(dst) > _layer(src)):
        bad.append(f"{src} -> {dst}")
  return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Every strongly connected group of two or more modules (Tarjan)."""
  index: dict[str, int] = {}
  low: dict[str, int] = {}
  stack: list[str] = []
  on_stack: set[str] = set()
  groups: list[list[str]] = []

  def visit(v: str) -> None:
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      group = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        group.append(w)
        if w == v:
          break
      if len(group) > 1:
        groups.append(sorted(group))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return groups


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
  return import_graph(_modules())


def test_the_graph_sees_the_project(graph):
  assert {"envs.physics", "agents.loop", "configs", "configs.schema",
          "trainlib.cli", "train"} <= set(graph)
  assert "configs" in graph["trainlib.rundir"]
  assert "agents.contract" in graph["agents.loop"]


def test_imports_run_one_way(graph):
  assert upward_imports(graph) == []
  assert not any(t.startswith("trainlib") for t in graph["configs"])


def test_no_import_cycle(graph):
  assert cycles(graph) == []


def test_the_checks_catch_what_they_guard_against(graph):
  """The two checks fail on a graph with configs -> trainlib added, and on
  one with a cycle."""
  bad = {k: set(v) for k, v in graph.items()}
  bad["configs"].add("trainlib.startup")
  assert upward_imports(bad) == ["configs -> trainlib.startup"]
  bad = {k: set(v) for k, v in graph.items()}
  bad["trainlib.startup"].add("trainlib.cli")  # cli -> startup already
  assert cycles(bad) == [["trainlib.cli", "trainlib.startup"]]
