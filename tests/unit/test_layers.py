"""Routers and worker jobs write through services: from a repository they may only read. API schemas take
their value types from the domain, not the database layer; services take only the settings they read."""

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


SCHEMAS = PACKAGE / "api" / "schemas"
# Value types API schemas still import from db/repositories, each moving to the domain with its writer
# (issue 12). Delete an entry when its move lands: the test fails while a stale entry stays.
PENDING_SCHEMA_IMPORTS_FROM_DB: set[str] = set()
# Services given a small config value, a protocol of the few settings they read, or those values alone,
# never Settings (service_config.py builds the values once per process).
SETTINGS_FREE_SERVICES = (
    "auth",
    "auto_topup",
    "auto_topup_links",
    "auto_topup_mandates",
    "calls",
    "charging",
    "documents",
    "gateways",
    "notifications",
    "pricing",
    "razorpay_mandates",
    "reconcile",
    "retention",
    "topups",
    "webhook_delivery",
    "webhook_endpoints",
)


def imported_names(source: str) -> set[str]:
    """`module.name` for every name imported from a module, `module` for every module imported."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def test_api_schemas_import_nothing_from_the_database_layer() -> None:
    found = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted(SCHEMAS.glob("*.py"))
        for name in imported_names(path.read_text())
        if _within(name, "walletsvc.db")
    }
    assert sorted(found - PENDING_SCHEMA_IMPORTS_FROM_DB) == [], "schemas take value types from the domain"
    assert sorted(PENDING_SCHEMA_IMPORTS_FROM_DB - found) == [], (
        "moved: delete from PENDING_SCHEMA_IMPORTS_FROM_DB"
    )


def test_services_take_only_the_settings_they_read() -> None:
    services = PACKAGE / "services"
    offenders = [
        name
        for name in SETTINGS_FREE_SERVICES
        if any(_within(n, "walletsvc.config") for n in imported_names((services / f"{name}.py").read_text()))
    ]
    assert offenders == []


def test_the_import_check_sees_every_form_of_import() -> None:
    source = (
        "import walletsvc.config\n"
        "from walletsvc.db.repositories.usage import UsageCharge\n"
        "def f():\n"
        "    from walletsvc.config import Settings\n"
    )
    names = imported_names(source)
    assert names == {
        "walletsvc.config",
        "walletsvc.db.repositories.usage.UsageCharge",
        "walletsvc.config.Settings",
    }
    assert _within("walletsvc.db.engine", "walletsvc.db")
    assert not _within("walletsvc.dbx", "walletsvc.db")
