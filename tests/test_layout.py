"""The package's layers: imports run one way, from the scripts' side down to the configuration."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "tl_hub"

# Lower layers never import higher ones. Within a layer, modules may import each other (without cycles).
LAYERS = [
    (
        "tl_hub.errors",
        "tl_hub.strategies",
        "tl_hub.config",
        "tl_hub.flags",
        "tl_hub.metrics",
        "tl_hub.classification_metric",
        "tl_hub.progress",
    ),
    ("tl_hub.models", "tl_hub.data", "tl_hub.recipes"),
    ("tl_hub.accelerator", "tl_hub.scoring"),
    ("tl_hub.release",),
    ("tl_hub.training",),
    ("tl_hub.inference",),
    ("tl_hub.experiments",),
    ("tl_hub.cli",),
]


def layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def imports() -> dict[str, set[str]]:
    """tl_hub module -> the tl_hub modules it imports (anywhere in the file, type-checking imports too)."""
    modules = {
        ".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in ROOT.rglob("*.py")
    }
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tl_hub"):
                targets |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("tl_hub")}
        edges[name] = {t for t in targets if t in modules and t != name}
    return edges


def test_every_import_goes_down_or_sideways() -> None:
    upward = [
        f"{a} -> {b}"
        for a, targets in imports().items()
        if a != "tl_hub"  # the public API: lazy re-exports of every layer
        for b in targets
        if b != "tl_hub" and layer(b) > layer(a)  # `from tl_hub import __version__` is the package's own
    ]
    assert upward == []


def test_there_are_no_import_cycles() -> None:
    edges = {a: {b for b in targets if b != "tl_hub"} for a, targets in imports().items() if a != "tl_hub"}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in edges.get(module, ()):
            assert state.get(target) != 1, "import cycle: " + " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in edges:
        if module not in state:
            visit(module, [])


def test_importing_the_package_loads_no_heavy_library() -> None:
    import subprocess
    import sys

    code = "import sys, tl_hub; print(sorted(m for m in ('torch', 'timm', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_release_never_reads_the_recipe_table() -> None:
    """A release renders from its own files (facts.json): release code does not import tl_hub.recipes."""
    readers = [
        f"{a} -> {b}"
        for a, targets in imports().items()
        if a.startswith("tl_hub.release")
        for b in targets
        if b == "tl_hub.recipes" or b.startswith("tl_hub.recipes.")
    ]
    assert readers == []


def test_inference_and_release_never_import_training() -> None:
    """Evaluating or releasing a model reads no training code: scoring lives below both (tl_hub.scoring)."""
    readers = [
        f"{a} -> {b}"
        for a, targets in imports().items()
        if a.startswith(("tl_hub.inference", "tl_hub.release"))
        for b in targets
        if b == "tl_hub.training" or b.startswith("tl_hub.training.")
    ]
    assert readers == []


def test_the_evaluation_script_never_reaches_training() -> None:
    """scripts/evaluate.py, and every tl_hub module it reaches by imports, read no training code: the
    Accelerator it makes comes from tl_hub.accelerator, below training."""
    edges = imports()
    script = ast.parse((ROOT.parent / "scripts" / "evaluate.py").read_text())
    todo = [
        name
        for node in ast.walk(script)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tl_hub")
        for name in (node.module, *(f"{node.module}.{a.name}" for a in node.names))
        if name in edges
    ]
    reached: set[str] = set()
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(edges[module])
    assert sorted(m for m in reached if m == "tl_hub.training" or m.startswith("tl_hub.training.")) == []
