"""The domain imports nothing but the standard library (and itself)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import walletsvc.domain

DOMAIN = Path(walletsvc.domain.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_modules_import_only_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"walletsvc", "__future__"}
    offenders = {
        path.name: sorted(_imports(path) - allowed)
        for path in DOMAIN.glob("*.py")
        if _imports(path) - allowed
    }
    assert offenders == {}


def test_domain_walletsvc_imports_stay_inside_the_domain() -> None:
    for path in DOMAIN.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("walletsvc"):
                assert node.module.startswith("walletsvc.domain"), f"{path.name} imports {node.module}"
