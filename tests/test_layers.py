"""The package's layering, checked by an ``ast`` pass (issue 8, STYLE section 6).

* ``mpactors._core`` imports nothing from ``dist``, ``cli`` or ``bench``;
* no import cycles between modules: imports under ``TYPE_CHECKING`` and
  inside functions count (a cycle hidden from the interpreter is still
  coupling);
* no module reads another module's private (``_x``) attributes or functions;
  importing a public name from a ``_``-module of the package is fine. On
  objects (``kernel._signal(...)``) the name decides: a private name that
  another module of the package defines and this one does not;
* the kernel and the distribution layer are typed for each other: nothing
  called ``kernel`` or ``dist`` is annotated ``Any``, so mypy checks the
  calls across that boundary.

The checker is plain functions over a directory, so the tests at the end run
it over small synthetic packages and show that it reports each problem.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import mpactors

PACKAGE = Path(mpactors.__file__).parent
CORE_MAY_NOT_IMPORT = ("dist", "cli", "bench")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def load(root: Path) -> Dict[str, Tuple[Path, ast.Module]]:
    """Every module of the package at ``root``: dotted name -> (path, tree)."""
    return {_module_name(root, p): (p, ast.parse(p.read_text(), str(p))) for p in sorted(root.rglob("*.py"))}


def _resolve(modname: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = modname.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(modules: Dict[str, Tuple[Path, ast.Module]]) -> Dict[str, Dict[str, Set[str]]]:
    """For each module: imported module -> names taken from it (every import, wherever it sits)."""
    out: Dict[str, Dict[str, Set[str]]] = {}
    for name, (path, tree) in modules.items():
        deps: Dict[str, Set[str]] = {}
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    deps.setdefault(alias.name, set())
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(name, is_pkg, node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:  # ``from . import x`` imports the module x
                        deps.setdefault(sub, set())
                    else:
                        deps.setdefault(target, set()).add(alias.name)
        out[name] = {d: n for d, n in deps.items() if d in modules and d != name}
    return out


def core_violations(graph: Dict[str, Dict[str, Set[str]]], top: str) -> List[str]:
    """Imports from ``<top>._core`` into the layers above it."""
    core = f"{top}._core"
    banned = tuple(f"{top}.{sub}" for sub in CORE_MAY_NOT_IMPORT)
    return sorted(
        f"{mod} imports {dep}"
        for mod, deps in graph.items()
        if mod == core or mod.startswith(core + ".")
        for dep in deps
        if any(dep == b or dep.startswith(b + ".") for b in banned)
    )


def cycles(graph: Dict[str, Dict[str, Set[str]]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: List[str] = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_reads(modules: Dict[str, Tuple[Path, ast.Module]]) -> List[str]:
    """``from m import _x`` and ``m._x`` where ``m`` is another module of the package."""
    graph = imports(modules)
    found: List[str] = []
    for name, (path, tree) in modules.items():
        is_pkg = path.name == "__init__.py"
        aliases: Dict[str, str] = {}  # local name bound to a package module -> that module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, is_pkg, node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:
                        aliases[alias.asname or alias.name] = sub
                    elif target in modules and target != name and _private(alias.name):
                        found.append(f"{name} imports {target}.{alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                owner = _dotted(node.value)
                mod = aliases.get(owner or "") or (owner if owner in modules else None)
                if mod is not None and mod != name and mod in graph.get(name, {}):
                    found.append(f"{name} reads {mod}.{node.attr}")
    return sorted(set(found))


def _defined_private(tree: ast.Module) -> Set[str]:
    """Private names a module defines: functions, class attributes, ``self._x = ...``, ``__slots__``."""
    out: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)  # __slots__ entries, getattr names
    return {n for n in out if _private(n)}


#: Private attributes of objects from outside the package that a module reads, and why.
OUTSIDE_PRIVATE_READS = {
    ("mpactors.dist", "_listener"): "multiprocessing.connection.Listener has no public accessor for its socket",
}


def _module_names(name: str, path: Path, tree: ast.Module, modules: Dict[str, Tuple[Path, ast.Module]]) -> Set[str]:
    """Local names bound to modules: outside the package (``os``), or of it (``private_reads`` checks those)."""
    out: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, path.name == "__init__.py", node)
            out.update(alias.asname or alias.name for alias in node.names if f"{target}.{alias.name}" in modules)
    return out


def private_attribute_reads(modules: Dict[str, Tuple[Path, ast.Module]]) -> List[str]:
    """``obj._x`` where ``_x`` belongs to another module of the package (not ``self``/``cls``).

    Objects have no import to follow, so the name decides: a private name
    this module does not define itself, but another module of the package
    does, is read across the boundary (``kernel._signal(...)`` in ``dist``,
    ``node._cookie_arg``).
    """
    own = {name: _defined_private(tree) for name, (_, tree) in modules.items()}
    found: List[str] = []
    for name, (path, tree) in modules.items():
        outside = _module_names(name, path, tree, modules)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"} | outside:
                continue  # its own object, or a module (``os._exit``; package modules: private_reads)
            if node.attr in own[name] or (name, node.attr) in OUTSIDE_PRIVATE_READS:
                continue
            owners = sorted(m for m, names in own.items() if m != name and node.attr in names)
            if owners:
                found.append(f"{name} reads .{node.attr} of {', '.join(owners)}")
    return sorted(set(found))


def _dotted(node: ast.expr) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


BOUNDARY = ("kernel", "dist")  # how the kernel and the distribution layer name each other


def untyped_boundary(modules: Dict[str, Tuple[Path, ast.Module]]) -> List[str]:
    """Arguments and attributes called ``kernel``/``dist`` annotated with ``Any`` (mypy would not check them)."""
    found: List[str] = []
    for name, (_, tree) in modules.items():
        for node in ast.walk(tree):
            pairs: List[Tuple[str, Optional[ast.expr]]] = []
            if isinstance(node, ast.arg):
                pairs.append((node.arg, node.annotation))
            elif isinstance(node, ast.AnnAssign):
                target = node.target
                label = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                pairs.append((label, node.annotation))
            for label, annotation in pairs:
                if label in BOUNDARY and annotation is not None and "Any" in ast.unparse(annotation):
                    found.append(f"{name}: {label} is typed {ast.unparse(annotation)}")
    return sorted(found)


def problems(root: Path) -> List[str]:
    """Everything wrong with the package at ``root``, one line each."""
    modules = load(root)
    graph = imports(modules)
    out = core_violations(graph, root.name)
    out += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    out += private_reads(modules)
    out += private_attribute_reads(modules)
    out += untyped_boundary(modules)
    return out


# -- the package itself ---------------------------------------------------------
def test_the_core_imports_nothing_from_dist_cli_or_bench() -> None:
    assert core_violations(imports(load(PACKAGE)), PACKAGE.name) == []


def test_no_module_imports_itself_back_through_others() -> None:
    assert cycles(imports(load(PACKAGE))) == []


def test_no_module_reads_another_modules_private_names() -> None:
    assert private_reads(load(PACKAGE)) == []


def test_no_module_reads_private_attributes_of_another_modules_objects() -> None:
    assert private_attribute_reads(load(PACKAGE)) == []


def test_the_architecture_document_names_every_module() -> None:
    root = Path(__file__).resolve().parent.parent  # the checkout (under tox, PACKAGE is the installed copy)
    text = (root / "docs" / "architecture.md").read_text()
    source = root / "mpactors"
    missing = [str(p.relative_to(source)) for p in sorted(source.rglob("*.py")) if f"`{p.relative_to(source)}`" not in text]
    assert missing == []


def test_the_kernel_and_the_distribution_layer_are_typed_for_each_other() -> None:
    assert untyped_boundary(load(PACKAGE)) == []


# -- the checker finds each problem ---------------------------------------------
def _package(tmp_path: Path, files: Dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", "_core/__init__.py": "", "dist/__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checker_reports_a_core_module_importing_dist_inside_a_function(tmp_path: Path) -> None:
    root = _package(tmp_path, {"_core/_kernel.py": "def f():\n    from ..dist import _peer\n", "dist/_peer.py": ""})
    assert problems(root) == ["pkg._core._kernel imports pkg.dist._peer"]


def test_the_checker_reports_a_cycle_hidden_under_type_checking(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "a.py": "from .b import B\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n",
    })
    assert problems(root) == ["import cycle: pkg.a -> pkg.b"]


def test_the_checker_reports_reads_of_private_names(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "a.py": "from . import b\nfrom .c import _helper, Public\nx = b._table\n",
        "b.py": "_table = {}\n",
        "c.py": "Public = 1\ndef _helper(): pass\n",
    })
    assert problems(root) == ["pkg.a imports pkg.c._helper", "pkg.a reads pkg.b._table"]


def test_the_checker_reports_private_attributes_read_on_another_modules_objects(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "_core/_kernel.py": "class Kernel:\n    def _signal(self):\n        self._table = 1\n",
        "dist/_remote.py": "import os\ndef f(kernel):\n    kernel._signal()\n    os._exit(0)\n    return kernel._other\n",
    })
    assert problems(root) == ["pkg.dist._remote reads ._signal of pkg._core._kernel"]


def test_the_checker_reports_a_kernel_typed_any(tmp_path: Path) -> None:
    root = _package(tmp_path, {"dist/_peer.py": "from typing import Any\nclass P:\n    def __init__(self, kernel: Any) -> None:\n        self.dist: Any = None\n"})
    assert problems(root) == ["pkg.dist._peer: dist is typed Any", "pkg.dist._peer: kernel is typed Any"]


def test_the_checker_accepts_public_names_from_private_modules(tmp_path: Path) -> None:
    root = _package(tmp_path, {"a.py": "from ._b import Thing\nfrom . import _b\nx = _b.Thing\n", "_b.py": "Thing = 1\n"})
    assert problems(root) == []
