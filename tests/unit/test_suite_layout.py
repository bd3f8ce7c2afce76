"""The suite's own layout: shared helpers live in tests/fixtures/, so a test imports them from there and
never from another test module or from a conftest.py (whose fixtures pytest injects by name)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _imported_test_modules(path: Path) -> list[str]:
    """The tests.* modules this file imports that are not tests.fixtures.* (plain or relative)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = ["." * node.level + (node.module or "")]
        else:
            continue
        for module in modules:
            top = module.split(".")
            if module.startswith("."):
                found.append(module)  # relative: the suite imports by absolute name only
            elif top[0] == "tests" and (len(top) < 2 or top[1] != "fixtures"):
                found.append(module)
    return found


def test_tests_import_helpers_only_from_tests_fixtures() -> None:
    offenders = {
        str(path.relative_to(TESTS)): modules
        for path in sorted(TESTS.rglob("*.py"))
        if (modules := _imported_test_modules(path))
    }
    assert offenders == {}, "move the shared helpers into tests/fixtures/ and import them from there"


def test_the_check_sees_what_it_forbids(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "from tests.conftest import bearer\n"
        "from tests.api.test_usage import ref\n"
        "import tests.api.test_errors\n"
        "from .test_other import helper\n"
        "from tests.fixtures.auth import owner_headers\n"
        "from walletsvc.app import create_app\n"
    )
    assert _imported_test_modules(sample) == [
        "tests.conftest",
        "tests.api.test_usage",
        "tests.api.test_errors",
        ".test_other",
    ]
