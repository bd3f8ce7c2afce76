from __future__ import annotations

import pytest

from walletsvc.domain.access import ROLE_SCOPES, Principal, Role, Scope, validate_key_scopes
from walletsvc.domain.errors import Forbidden, InvalidRequest


def user(role: Role, tenant_id: str | None = "t1") -> Principal:
    return Principal(kind="user", subject="u1", tenant_id=tenant_id, scopes=ROLE_SCOPES[role], role=role)


def test_member_reads_but_cannot_write_or_administer() -> None:
    member = user(Role.MEMBER)
    member.require(Scope.WALLET_READ)
    with pytest.raises(Forbidden):
        member.require(Scope.WALLET_WRITE)
    with pytest.raises(Forbidden):
        member.require(Scope.ADMIN)


def test_owner_writes_but_cannot_administer() -> None:
    owner = user(Role.OWNER)
    owner.require(Scope.WALLET_WRITE)
    with pytest.raises(Forbidden):
        owner.require(Scope.ADMIN)


def test_super_admin_holds_every_scope() -> None:
    assert user(Role.SUPER_ADMIN, None).scopes == frozenset(Scope)


def test_tenant_routes_need_a_tenant() -> None:
    assert user(Role.MEMBER).own_tenant() == "t1"
    with pytest.raises(Forbidden):
        user(Role.SUPER_ADMIN, None).own_tenant()


def test_bound_credentials_never_name_another_tenant() -> None:
    key = Principal(kind="api_key", subject="k1", tenant_id="t1", scopes=frozenset({Scope.USAGE_WRITE}))
    assert key.tenant_for(None) == "t1"
    assert key.tenant_for("t1") == "t1"
    with pytest.raises(Forbidden):
        key.tenant_for("t2")


def test_platform_credentials_must_name_a_tenant() -> None:
    key = Principal(kind="api_key", subject="k1", tenant_id=None, scopes=frozenset({Scope.USAGE_WRITE}))
    assert key.tenant_for("t9") == "t9"
    with pytest.raises(InvalidRequest):
        key.tenant_for(None)


def test_actor_names_the_principal() -> None:
    assert user(Role.OWNER).actor == "user:u1"


def test_admin_scope_only_on_platform_keys() -> None:
    validate_key_scopes(frozenset({Scope.ADMIN}), None)
    with pytest.raises(InvalidRequest):
        validate_key_scopes(frozenset({Scope.ADMIN}), "t1")
    with pytest.raises(InvalidRequest):
        validate_key_scopes(frozenset(), None)
