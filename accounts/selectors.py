"""Reads for accounts, scoped to what the viewer may see (admins see everything)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import ApiKey, AuditEntry, Team, TeamPreference, User


def is_admin(user: User) -> bool:
    return bool(user.is_authenticated and user.is_staff)


def api_key_with_user(key_id: str) -> ApiKey | None:
    """The key with id KEY_ID and its user, for authenticating a request (the plugin API keeps what
    this reads in memory: `accounts.authcache`)."""
    return ApiKey.objects.select_related("user").filter(key_id=key_id).first()


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
