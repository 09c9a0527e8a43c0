"""Reads for accounts, scoped to what the viewer may see (admins see everything)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from accounts.models import ApiKey, AuditEntry, Team, TeamPreference, User


def is_admin(user: User) -> bool:
    return bool(user.is_authenticated and user.is_staff)


def api_key_with_user(key_id: str) -> ApiKey | None:
    """The key with id KEY_ID and its user, for authenticating a request.

    One raw query, its SQL and converters made once: on every plugin request the ORM's
    `select_related(...).first()` cost about 1 ms of CPU in the server (mostly compiling the query),
    this about a quarter of it. The values go through Django's converters, as the ORM's do."""
    database = connections[DEFAULT_DB_ALIAS]
    sql, converters, key_names, user_names = _key_lookup(database)
    with database.cursor() as cursor:
        cursor.execute(sql, [key_id])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, column, functions in converters:
        for function in functions:
            values[index] = function(values[index], column, database)
    split = len(key_names)
    key = ApiKey.from_db(database.alias, key_names, values[:split])
    key.user = User.from_db(database.alias, user_names, values[split:])
    return key


@lru_cache(maxsize=64)  # one entry per connection (a thread's)
def _key_lookup(database: BaseDatabaseWrapper) -> tuple[str, list[tuple[int, Any, list[Any]]], list[str], list[str]]:
    """SQL selecting every column of the key and its user, each column's converters on DATABASE (found
    as SQLCompiler finds them), and the key's and the user's field names in column order."""
    quote = database.ops.quote_name
    columns = [field.get_col("k") for field in ApiKey._meta.concrete_fields]
    columns += [field.get_col("u") for field in User._meta.concrete_fields]
    user_column = ApiKey._meta.get_field("user").column
    sql = (
        f"SELECT {', '.join(f'{quote(column.alias)}.{quote(column.target.column)}' for column in columns)} "  # noqa: S608
        f"FROM {quote(ApiKey._meta.db_table)} {quote('k')} "
        f"JOIN {quote(User._meta.db_table)} {quote('u')} ON {quote('u')}.{quote(User._meta.pk.column)} = "
        f"{quote('k')}.{quote(user_column)} WHERE {quote('k')}.{quote('key_id')} = %s"
    )
    converters = []
    for index, column in enumerate(columns):
        functions = database.ops.get_db_converters(column) + column.get_db_converters(database)
        if functions:
            converters.append((index, column, functions))
    key_names = [field.attname for field in ApiKey._meta.concrete_fields]
    return sql, converters, key_names, [field.attname for field in User._meta.concrete_fields]


def user_list_visible(*, viewer: User) -> QuerySet[User]:
    """Admins: everyone. Others: themselves and their teammates."""
    users = User.objects.select_related("team")
    if is_admin(viewer):
        return users
    if viewer.team_id:
        return users.filter(team_id=viewer.team_id)
    return users.filter(pk=viewer.pk)


def team_list_visible(*, viewer: User) -> QuerySet[Team]:
    if is_admin(viewer):
        return Team.objects.all()
    return Team.objects.filter(pk=viewer.team_id) if viewer.team_id else Team.objects.none()


def api_key_list_visible(*, viewer: User) -> QuerySet[ApiKey]:
    """Admins: every key. Others: only their own keys (never a teammate's)."""
    keys = ApiKey.objects.select_related("user")
    return keys if is_admin(viewer) else keys.filter(user=viewer)


def team_preference_list_visible(*, viewer: User) -> QuerySet[TeamPreference]:
    prefs = TeamPreference.objects.select_related("team", "project")
    if is_admin(viewer):
        return prefs
    return prefs.filter(team_id=viewer.team_id) if viewer.team_id else prefs.none()


def audit_list(*, limit: int | None = None) -> QuerySet[AuditEntry]:
    entries = AuditEntry.objects.all()
    return entries[:limit] if limit else entries


def preferred_model(*, user: User, project: str | None = None) -> str | None:
    """The completion model the user's team prefers: the override for PROJECT (a project name) when the
    team set one, else the team's default; None without a team, a preference or an active license.

    Contract for the plugin API (`default_model` in the capabilities, requests naming the default).
    """
    if not user.team_id:
        return None
    from licensing.selectors import license_active

    if not license_active():
        return None
    prefs = {
        (pref.project.name if pref.project_id else None): pref.completion_model
        for pref in TeamPreference.objects.filter(team_id=user.team_id).select_related("project")
    }
    if project and project in prefs:
        return prefs[project]
    return prefs.get(None)


def team_preferences_version() -> str:
    """Changes whenever a team preference is set, changed or cleared, or the edition switches
    (the plugin API folds it into `caps_version` so that plugins reload their default model).

    Every preference change writes an audit row and the audit log is append-only, so its latest
    preference row id only grows.
    """
    from django.db.models import Max, Q

    from licensing.selectors import edition

    latest = AuditEntry.objects.filter(
        Q(action__startswith="team.preference") | Q(action__startswith="teampreference.")  # services, admin
    ).aggregate(top=Max("id"))["top"]
    return f"{edition()}:{latest or 0}"
