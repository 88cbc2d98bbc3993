"""The package's shape (issue 15): small modules, no import cycle, no private name
imported from another module.  Each check walks the source with :mod:`ast`, so it fails
on the offending module and name."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "poisondetect"
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(mod: str, path: Path) -> list[tuple[str, str | None, bool]]:
    """(imported module, name or None, at module level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    top = {id(n) for n in tree.body}
    typing_only: set[int] = set()
    for n in tree.body:  # imports under `if TYPE_CHECKING:` / try at module level count as top
        if isinstance(n, (ast.If, ast.Try)):
            top.update(id(c) for c in ast.walk(n))
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            typing_only.update(id(c) for c in ast.walk(n))  # annotations only: never imported at run time
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, None, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                src = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            out += [(src, a.name, id(node) in top) for a in node.names]
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    g: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for src, name, _ in _imports(m, p):
            if not src.startswith("poisondetect"):
                continue
            target = f"{src}.{name}" if name and f"{src}.{name}" in mods else src
            if target in mods and target != m:
                g[m].add(target)
    return g


def test_every_module_is_small():
    big = {m: n for m, p in _modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_no_import_cycle():
    g = _graph()
    # a package's __init__ re-exporting its submodules is not a cycle of ideas
    for m in g:
        g[m] = {t for t in g[m] if not (t.startswith(m + ".") and _modules()[m].name == "__init__.py")}
    seen: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        seen[m] = 1
        stack.append(m)
        for t in sorted(g[m]):
            if seen.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in seen:
                visit(t, stack)
        stack.pop()
        seen[m] = 2

    for m in sorted(g):
        if m not in seen:
            visit(m, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:10])


def test_no_private_name_imported_across_modules():
    bad = []
    mods = _modules()
    for m, p in mods.items():
        for src, name, _ in _imports(m, p):
            if not src.startswith("poisondetect") or name is None:
                continue
            if f"{src}.{name}" in mods:  # a submodule, private or not, is a module of the package
                continue
            if name.startswith("_") and not name.startswith("__"):
                bad.append(f"{m} imports {src}.{name}")
    assert not bad, "private names imported across modules: " + "; ".join(bad)


def test_no_private_attribute_of_another_module():
    """``K._STATE`` from another module is the same breach as importing ``_STATE``."""
    bad = []
    mods = _modules()
    for m, p in mods.items():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        aliases = {}
        for src, name, _ in _imports(m, p):
            target = f"{src}.{name}" if name else src
            if target in mods and target != m:
                aliases[target.rsplit(".", 1)[-1]] = target
        for node in tree.body:  # the names the imports bind (``as`` aliases included)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    if a.asname and a.name.rsplit(".", 1)[-1] in aliases:
                        aliases[a.asname] = aliases[a.name.rsplit(".", 1)[-1]]
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{m}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not bad, "private attributes of other modules: " + "; ".join(bad)


@pytest.mark.parametrize("bad", ["cycle", "private", "attribute"])
def test_the_checks_can_fail(tmp_path, monkeypatch, bad):
    pkg = tmp_path / "poisondetect"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    if bad == "cycle":
        (pkg / "a.py").write_text("from . import b\n")
        (pkg / "b.py").write_text("from .a import x\n")
    elif bad == "private":
        (pkg / "a.py").write_text("_x = 1\n")
        (pkg / "b.py").write_text("from .a import _x\n")
    else:
        (pkg / "a.py").write_text("_x = 1\n")
        (pkg / "b.py").write_text("from . import a as A\n\nprint(A._x)\n")
    monkeypatch.setattr(__import__(__name__), "PKG", pkg)
    check = {"cycle": test_no_import_cycle, "private": test_no_private_name_imported_across_modules,
             "attribute": test_no_private_attribute_of_another_module}[bad]
    with pytest.raises(AssertionError):
        check()
