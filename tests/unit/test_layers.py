"""Routers and worker jobs write through services: from a repository they may only read."""

from __future__ import annotations

import ast
from pathlib import Path

import walletsvc

PACKAGE = Path(walletsvc.__file__).parent
THIN = [*sorted((PACKAGE / "api" / "routers").glob("*.py")), *sorted((PACKAGE / "worker").glob("*.py"))]
READ_PREFIXES = (
    "get",
    "list",
    "page",
    "for_",
    "find",
    "locate",
    "count",
    "events",
    "auto_topup",
    "exists",
    "read",
)


def _is_repository(call: ast.expr) -> bool:
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id.endswith(("Repository", "Store", "Directory"))
    )


def repository_calls(source: str) -> list[tuple[int, str]]:
    """(line, method) of every method called on a repository built in this module."""
    tree = ast.parse(source)
    names = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _is_repository(node.value)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if _is_repository(owner) or (isinstance(owner, ast.Name) and owner.id in names):
                calls.append((node.lineno, node.func.attr))
    return calls


def test_routers_and_jobs_only_read_from_repositories() -> None:
    writes = {
        f"{path.relative_to(PACKAGE)}:{line} {method}"
        for path in THIN
        for line, method in repository_calls(path.read_text())
        if not method.startswith(READ_PREFIXES)
    }
    assert not writes, f"routers and jobs write through services, not repositories: {sorted(writes)}"


def test_the_check_sees_a_write_through_a_repository() -> None:
    source = (
        "async def route(session):\n"
        "    plans = PlanRepository(session)\n"
        "    await plans.get('p')\n"
        "    await plans.replace(plan)\n"
        "    await ApiKeyRepository(session).revoke('k')\n"
    )
    assert [m for _, m in repository_calls(source)] == ["get", "replace", "revoke"]
