"""Which library files an entry script runs: the rules' code inputs, derived from the imports.

``code_for("scripts/ingest_dump.py")`` reads the script's ``import`` statements (with ``ast``: nothing is
imported or executed), follows every import of the ``alpha`` package transitively, including imports
inside functions, and returns the script and the files it reaches (each imported module, and the
``__init__.py`` of every package on the way) as paths relative to the working directory. A rule that lists
them as inputs reruns when, and only when, code it runs has changed; relative paths keep a finished run
valid when the project moves to another directory (absolute paths would make every job look new).
"""
from __future__ import annotations

import ast
import os
from functools import lru_cache
from pathlib import Path

PACKAGE = "alpha"


class CodeDepsError(ValueError):
    """An entry script that does not exist, or an ``alpha`` import that names no module file."""


def module_file(library_root: Path, module: str) -> Path | None:
    """The file of dotted ``module`` under ``library_root`` (the folder holding the package), or None."""
    base = library_root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _package_of(library_root: Path, path: Path) -> str | None:
    try:
        rel = path.resolve().relative_to(library_root.resolve())
    except ValueError:
        return None  # an entry script beside the package, not inside it
    parts = list(rel.with_suffix("").parts)
    return ".".join(parts if rel.name == "__init__.py" else parts[:-1]) or None


def _import_statements(body: list[ast.stmt]):
    """Import statements at any depth of statements (functions, classes, if/try/with blocks); expressions
    hold none, so they are not walked (most of a module's nodes)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from _import_statements(children)


@lru_cache(maxsize=None)
def imported_modules(library_root: Path, path: Path) -> frozenset[str]:
    """Dotted names of the ``alpha`` modules ``path`` imports (``from pkg import name`` counts
    ``pkg.name`` when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in _import_statements(tree.body):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(library_root, path)
                if package is None:
                    raise CodeDepsError(f"{path}: relative import outside the {PACKAGE} package")
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            for alias in node.names:
                if alias.name != "*" and module_file(library_root, f"{base}.{alias.name}") is not None:
                    found.add(f"{base}.{alias.name}")
    return frozenset(found)


@lru_cache(maxsize=None)
def _closure(library_root: Path, script: Path) -> tuple[Path, ...]:
    if not script.is_file():
        raise CodeDepsError(f"entry script {script} does not exist")
    files = {script}
    todo = [script]
    seen: set[str] = set()
    while todo:
        for module in imported_modules(library_root, todo.pop()) - seen:
            seen.add(module)
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
                name = ".".join(parts[:depth])
                file = module_file(library_root, name)
                if file is None:
                    raise CodeDepsError(f"{script}: imports {module}, but {name} is no module under {library_root}")
                if file not in files:
                    files.add(file)
                    todo.append(file)
    return tuple(sorted(files))


def code_for(script: str | os.PathLike, project_root: str | os.PathLike, library_root: str | os.PathLike,
             relative_to: str | os.PathLike | None = None) -> list[str]:
    """The entry script (``project_root``-relative) and every library file it runs, sorted, as paths
    relative to ``relative_to`` (default: the working directory)."""
    root = Path(project_root).resolve()
    files = _closure(Path(library_root).resolve(), root / script)
    start = Path(relative_to or os.getcwd()).resolve()
    return [os.path.relpath(f, start) for f in files]
