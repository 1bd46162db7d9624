"""The tree says what the README says: every module is in the layout table, modules stay small, and
imports point down (the library never imports tools/, bench/ or an entry point; the lower packages
never import the stages above them)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"tests", "data", "output", "test-artifacts", ".git"}
MAX_LINES = 450
ENTRY_POINTS = {"main", "main_finetune", "IS", "app"}  # DAMSM.py is also the encoders' library module
# config/factory.py turns the config into objects of every library piece: it sits above them.
LOWER = ("miscc.metrics", "miscc.run", "miscc.text", "miscc.config.__init__", "miscc.config.cli")
UPPER = ("miscc.train", "miscc.watch", "miscc.sample.sampler", "miscc.sample.grid", "miscc.page")
# The library modules that may read the global ``cfg`` or build from it (``miscc/config/factory.py``): the
# trainers, the sampler and the page's model builder. What they call takes arguments (the training
# skeleton: a run layout and ``LoopOptions``), so it runs the same under any config.
CONFIG_READERS = {"miscc/train/gan.py", "miscc/train/damsm.py", "miscc/sample/sampler.py", "miscc/page/model.py"}


def modules() -> list[str]:
    """Every Python file outside tests/, but package markers that hold only a docstring."""
    return sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                  if not SKIP & set(p.relative_to(ROOT).parts) and not _marker(p))


def _marker(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return path.name == "__init__.py" and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
                                              for n in body)


def imported(path: str, top_level_only: bool = False) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_every_module_is_in_the_readme_layout_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Repository layout"):readme.index("## Where to change what")]
    listed = set(re.findall(r"`([\w/.]+\.py)`", table))
    missing = [m for m in modules() if m not in listed]
    assert not missing, f"add these to README.md's layout table: {missing}"
    gone = sorted(p for p in listed if not (ROOT / p).is_file())
    assert not gone, f"README.md's layout table lists files that do not exist: {gone}"


def test_no_module_is_over_450_lines():
    long = {m: n for m in modules() if (n := len((ROOT / m).read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_the_library_imports_no_tool_benchmark_or_entry_point():
    for m in modules():
        if m.startswith(("miscc/", "model.py", "datasets.py", "sync_batchnorm/")):
            bad = {n for n in imported(m) if n.split(".")[0] in {"tools", "bench", "tests"} | ENTRY_POINTS}
            assert not bad, f"{m} imports {sorted(bad)}"


def test_lower_packages_do_not_import_the_stages_above_them():
    for m in modules():
        dotted = m[:-3].replace("/", ".")
        if dotted.startswith(LOWER):
            bad = {n for n in imported(m, top_level_only=True) if n.startswith(UPPER)}
            assert not bad, f"{m} imports {sorted(bad)}"


def test_below_the_trainers_and_the_sampler_nothing_reads_the_config():
    for m in modules():
        if m.startswith(("miscc/", "model.py", "datasets.py", "DAMSM.py")) and not m.startswith("miscc/config/") \
                and m not in CONFIG_READERS:
            bad = {n for n in imported(m) if n == "miscc.config.cfg" or n.startswith("miscc.config.factory")}
            assert not bad, f"{m} imports {sorted(bad)}"
