"""No import cycle among driftwatch's modules, counting every import that can run.

Edges: ``import`` and ``from … import`` anywhere in a module (top level, functions, classes),
plus the package façade's lazy names (``driftwatch._LAZY``, imported on first attribute access).
Not edges: imports under ``if TYPE_CHECKING:``, which never run. ``from pkg import name`` is an
edge to the submodule ``pkg.name`` when there is one, else to ``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import driftwatch

ROOT = Path(__file__).resolve().parents[2]
#: Import name prefix → source folder (collectors/ and detectors/ install under driftwatch).
FOLDERS = {"driftwatch": ROOT / "driftwatch", "driftwatch.collectors": ROOT / "collectors"}
FOLDERS["driftwatch.detectors"] = ROOT / "detectors"


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module's import name → (file, is a package ``__init__``)."""
    found: dict[str, tuple[Path, bool]] = {}
    for prefix, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            package = parts[-1] == "__init__"
            if package:
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = (path, package)
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def graph() -> dict[str, set[str]]:
    """Module → the driftwatch modules it imports."""
    known = modules()

    def owner(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {}
    for name, (path, package) in known.items():
        targets: set[str | None] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(owner(alias.name) for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                here = name.split(".") if package else name.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join([*here, *([node.module] if node.module else [])])
            targets.update(owner(f"{base}.{alias.name}") for alias in node.names)
        edges[name] = {t for t in targets if t is not None and t != name}
    edges["driftwatch"] |= set(driftwatch._LAZY.values())
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_every_kind_of_import() -> None:
    edges = graph()
    assert "driftwatch._alerting.alerts" in edges["driftwatch._monitor"]  # top level
    assert "driftwatch._offline.report" in edges["driftwatch._cli.report"]  # inside run()
    assert "driftwatch.detectors._lagged_sr" in edges["driftwatch.detectors"]  # relative
    assert "driftwatch.collectors._anthropic" in edges["driftwatch"]  # the façade's lazy names
    assert "driftwatch._alerting.notifiers_config" in edges["driftwatch._config"]  # in a function
    snippet = (
        "if TYPE_CHECKING:\n    import a\nelse:\n    import b\nclass C:\n    def f(self):\n        import c\n"
    )
    assert [n.names[0].name for n in _imports(ast.parse(snippet))] == ["b", "c"]  # never-run imports skipped
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    edges = graph()
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(
        f"  {c}: " + "; ".join(f"{m} -> {sorted(edges[m] & set(c))}" for m in c) for c in found
    )
