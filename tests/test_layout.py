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


# -- the path of the run's configuration ------------------------------------------------------------------

# The measure: following `run` from the trainer through every tl_hub function it is passed to (or an
# object holding it, such as the trainer's `job`), in the order the calls are written, at most this many
# steps climb back to a higher layer than the function reached just before (the reader goes down into a
# helper, then back up into another layer to read the next one).
MAX_CLIMBS = 6
TRACKED = ("run",)  # the names the run's configuration enters with


def _functions() -> dict[str, tuple[str, ast.FunctionDef, dict[str, str]]]:
    """'module.function' (and 'module.Class.method') -> (module, its definition, the module's names ->
    what they import)."""
    found: dict[str, tuple[str, ast.FunctionDef, dict[str, str]]] = {}
    for path in ROOT.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        names: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tl_hub"):
                names |= {a.asname or a.name: f"{node.module}.{a.name}" for a in node.names}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                names.setdefault(node.name, f"{module}.{node.name}")
                found[f"{module}.{node.name}"] = (module, node, names)
            elif isinstance(node, ast.ClassDef):
                names.setdefault(node.name, f"{module}.{node.name}")
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        found[f"{module}.{node.name}.{item.name}"] = (module, item, names)
    # a package's re-exports: tl_hub.models.create_model is tl_hub.models.registry.create_model
    for path in ROOT.rglob("__init__.py"):
        package = ".".join(path.relative_to(ROOT.parent).parent.parts)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tl_hub"):
                for a in node.names:
                    if f"{node.module}.{a.name}" in found:
                        found.setdefault(f"{package}.{a.asname or a.name}", found[f"{node.module}.{a.name}"])
    return found


def _holders() -> set[str]:
    """The tl_hub classes that hold the run (a field `run: RunConfig`), and RunConfig itself."""
    held = {"tl_hub.config.RunConfig"}
    for path in ROOT.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and any(
                isinstance(item, ast.AnnAssign)
                and isinstance(item.target, ast.Name)
                and item.target.id == "run"
                and ast.unparse(item.annotation) == "RunConfig"
                for item in node.body
            ):
                held.add(f"{module}.{node.name}")
    return held


def _carries(node: ast.expr, tracked: set[str]) -> bool:
    """Whether an argument is the run (or a holder of it): a tracked name, or `holder.run`."""
    if isinstance(node, ast.Name):
        return node.id in tracked
    return isinstance(node, ast.Attribute) and node.attr == "run" and _carries(node.value, tracked)


def run_path() -> list[tuple[str, str, int]]:
    """(caller, callee, depth) for every call that passes the run on, depth first in written order."""
    functions = _functions()
    holders = _holders()
    path: list[tuple[str, str, int]] = []

    def made(call: ast.expr, names: dict[str, str]) -> str | None:
        """The tl_hub class a call makes or returns (by the callee's return annotation), if known."""
        if not isinstance(call, ast.Call):
            return None
        target = resolve(call, names, {})
        if target is None:
            return None
        if target.removesuffix(".__init__") in holders or target.endswith(".__init__"):
            return target.removesuffix(".__init__")
        if target in functions and functions[target][1].returns is not None:
            returned = ast.unparse(functions[target][1].returns)
            return functions[target][2].get(returned)
        return None

    def resolve(call: ast.Call, names: dict[str, str], kinds: dict[str, str]) -> str | None:
        func = call.func
        if isinstance(func, ast.Name) and func.id in names:
            callee = names[func.id]
            return f"{callee}.__init__" if f"{callee}.__init__" in functions else callee
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = kinds.get(func.value.id) or names.get(func.value.id)  # an object's method; a classmethod
            if owner is not None:
                return f"{owner}.{func.attr}"
        return None

    def follow(name: str, tracked: set[str], depth: int, seen: tuple[str, ...]) -> None:
        _module, fn, names = functions[name]
        tracked = set(tracked)
        kinds = {  # local name -> its tl_hub class (parameters by their annotation)
            a.arg: names[ast.unparse(a.annotation)]
            for a in fn.args.args
            if a.annotation is not None and ast.unparse(a.annotation) in names
        }
        for node in _in_order(fn):
            if isinstance(node, ast.Assign):
                value, targets = node.value, node.targets[0]
                pairs = (
                    zip(targets.elts, value.elts, strict=True)
                    if isinstance(targets, ast.Tuple) and isinstance(value, ast.Tuple)
                    else [(targets, value)]
                )
                for target, v in pairs:
                    if not isinstance(target, ast.Name):
                        continue
                    kind = made(v, names)
                    if kind is not None:
                        kinds[target.id] = kind
                    if _carries(v, tracked) or kind in holders:
                        tracked.add(target.id)  # the run, or an object holding it (job = set_up(run))
            if not isinstance(node, ast.Call):
                continue
            callee = resolve(node, names, kinds)
            if callee is None or callee not in functions or callee in seen:
                continue
            params = [
                a.arg for a in (*functions[callee][1].args.posonlyargs, *functions[callee][1].args.args)
            ]
            if params and params[0] == "self":
                params = params[1:]

            def carries(arg: ast.expr) -> bool:  # the run, a holder, or a call's result that is one
                return _carries(arg, tracked) or made(arg, names) in holders

            passed = {params[i] for i, a in enumerate(node.args) if i < len(params) and carries(a)}
            passed |= {k.arg for k in node.keywords if k.arg and carries(k.value)}
            if passed:
                path.append((name, callee, depth))
                follow(callee, passed, depth + 1, (*seen, callee))

    start = "tl_hub.training.trainer.train"
    follow(start, set(TRACKED), 1, (start,))
    return path


def _in_order(fn: ast.FunctionDef) -> list[ast.AST]:
    """The function's nodes in the order they are written (assignments before the calls they hold are
    followed into, so `job = set_up(run)` tracks `job` before `build_inputs(job)`)."""
    return sorted(
        (n for n in ast.walk(fn) if isinstance(n, (ast.Assign, ast.Call)) and n is not fn),
        key=lambda n: (n.lineno, n.col_offset, isinstance(n, ast.Call)),
    )


def _module_of(function: str) -> str:
    parts = function.split(".")
    while parts:
        parts.pop()
        name = ".".join(parts)
        if (ROOT.parent / Path(*parts)).with_suffix(".py").exists() or (ROOT.parent / Path(*parts)).is_dir():
            return name
    raise AssertionError(function)


def climbs() -> tuple[list[str], list[str]]:
    """The run's path written out, and the steps of it that climb to a higher layer than the step before."""
    path = run_path()
    lines, up = [], []
    previous = "tl_hub.training.trainer.train"
    for caller, callee, depth in path:
        line = f"{'  ' * depth}{callee} (layer {layer(_module_of(callee))})"
        lines.append(line)
        if layer(_module_of(callee)) > layer(_module_of(previous)):
            up.append(f"{previous} -> {callee} (called by {caller})")
        previous = callee
    return lines, up


def test_the_run_climbs_back_up_the_layers_at_most_six_times() -> None:
    lines, up = climbs()
    assert len(up) <= MAX_CLIMBS, "\n".join(["the run's path:", *lines, f"{len(up)} climbs:", *up])
