"""The fast tier (`pytest -m "not slow"`) reaches every tl_hub module: a fast test imports each one, directly
or through the tl_hub modules it imports (line coverage: README, "Tests").

What is slow is marked `@pytest.mark.slow` (a test, a class, or a whole file with `pytestmark`): imports
inside those count for nothing here, so marking a test slow cannot quietly leave a module without a fast test.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "tl_hub"
# Modules loaded from their file, not imported: importing the name on the left loads the module on the right.
LOADED_BY_PATH = {"tl_hub.metrics.METRIC_PATH": "tl_hub.classification_metric"}  # evaluate.load(METRIC_PATH)


def modules() -> dict[str, Path]:
    """Every module of the tl_hub package, packages included (``tl_hub``, ``tl_hub.data``, ...): its file."""
    return {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in PACKAGE.rglob("*.py")
    }


def _slow(node: ast.AST) -> bool:
    return "mark.slow" in ast.unparse(node)


def fast_imports(path: Path) -> set[str]:
    """The tl_hub modules a test file imports outside its slow tests (none if the whole file is slow)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(getattr(t, "id", "") == "pytestmark" for t in targets) and _slow(node.value):
            return set()
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and any(map(_slow, node.decorator_list)):
            return
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tl_hub"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # a submodule, if it is one
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("tl_hub"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def reached(names: set[str]) -> set[str]:
    """The tl_hub modules that importing `names` can load: their packages, and what they import in turn."""
    graph = {name: fast_imports(path) for name, path in modules().items()}
    seen: set[str] = set()
    names = names | {LOADED_BY_PATH[n] for n in names if n in LOADED_BY_PATH}
    todo = [".".join(n.split(".")[:k]) for n in names for k in range(1, n.count(".") + 2)]
    while todo:
        name = todo.pop()
        if name in graph and name not in seen:
            seen.add(name)
            todo += [".".join(n.split(".")[:k]) for n in graph[name] for k in range(1, n.count(".") + 2)]
    return seen


def test_every_tl_hub_module_is_imported_by_a_fast_test() -> None:
    # spaces/app.py is loaded by path by test_space's fast tests (its `app` fixture): what it imports counts
    tests = [*TESTS.rglob("*.py"), TESTS.parent / "spaces" / "app.py"]
    assert sorted(modules().keys() - reached(set().union(*map(fast_imports, tests)))) == []


def test_the_check_sees_slow_marks(tmp_path: Path) -> None:
    path = tmp_path / "test_sample.py"
    path.write_text(
        "import pytest\nfrom tl_hub.config import RunConfig\n"
        "@pytest.mark.slow\ndef test_a():\n    from tl_hub.training import trainer\n"
        "def test_b():\n    import tl_hub.metrics\n"
    )
    assert fast_imports(path) == {"tl_hub.config", "tl_hub.config.RunConfig", "tl_hub.metrics"}
    path.write_text("import pytest\nimport tl_hub.metrics\npytestmark = pytest.mark.slow\n")
    assert fast_imports(path) == set()
