"""The Users page (Access Control): thin views over accounts.services; actions are admin-only POSTs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.models import ApiKey, Team, User
from licensing.selectors import license_state, seats_used
from refact_site.exceptions import ApplicationError


def admin_only(view: Callable) -> Callable:
    @wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_staff:
            return render(request, "accounts/admin_only.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


def _page(request: HttpRequest, *, new_key: dict | None = None, status: int = 200) -> HttpResponse:
    from hosting.selectors import model_catalogue
    from projects.models import Project

    state = license_state()
    users = selectors.user_list_visible(viewer=request.user).prefetch_related("api_keys")
    context = {
        "license": state,
        "enterprise": state.active,
        "seats_used": seats_used(),
        "users": users,
        "teams": Team.objects.prefetch_related("members"),
        "preferences": selectors.team_preference_list_visible(viewer=request.user),
        "projects": Project.objects.filter(team__isnull=False).select_related("team"),
        "completion_models": [spec.name for spec in model_catalogue() if spec.supports("completion")],
        "new_key": new_key,
    }
    return render(request, "accounts/users.html", context, status=status)


def _run(request: HttpRequest, action: Callable[[], str | None]) -> HttpResponse:
    """Run a service call; its refusal becomes an error message, success a confirmation."""
    try:
        done = action()
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        if done:
            messages.success(request, done)
    return redirect("accounts:users")


def _key_shown_once(request: HttpRequest, key: ApiKey, plaintext: str, title: str) -> HttpResponse:
    messages.success(request, title)
    return _page(request, new_key={"owner": key.user.username, "name": key.name, "plaintext": plaintext})


@admin_only
def users(request: HttpRequest) -> HttpResponse:
    return _page(request)


def _team_from(request: HttpRequest) -> Team | None:
    team_id = request.POST.get("team", "")
    return get_object_or_404(Team, pk=team_id) if team_id else None


@require_POST
@admin_only
def user_add(request: HttpRequest) -> HttpResponse:
    try:
        user, plaintext = services.user_add(
            username=request.POST.get("username", ""),
            email=request.POST.get("email", ""),
            team=_team_from(request),
            actor=request.user,
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("accounts:users")
    key = user.api_keys.get()
    return _key_shown_once(request, key, plaintext, f"User {user.username} added")


@require_POST
@admin_only
def user_team(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    team = _team_from(request)
    return _run(
        request,
        lambda: (
            services.user_set_team(user=user, team=team, actor=request.user)
            and f"{user.username} is now in {team.name if team else 'no team'}"
        ),
    )


@require_POST
@admin_only
def user_active(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    active = request.POST.get("active") == "1"
    return _run(
        request,
        lambda: (
            services.user_set_active(user=user, active=active, actor=request.user)
            and f"{user.username} {'reactivated' if active else 'deactivated'}"
        ),
    )


def _end_of_day(text: str) -> datetime | None:
    """The end of that day (server time zone) for a `YYYY-MM-DD` field; empty means no expiry."""
    if not text.strip():
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ApplicationError(f"Expiry {text!r} is not a date (YYYY-MM-DD)", field="expires_on") from None
    return timezone.make_aware(datetime.combine(day, time.max))


@require_POST
@admin_only
def key_create(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    try:
        key, plaintext = services.api_key_create(
            user=user,
            name=request.POST.get("name", "") or "default",
            expires_at=_end_of_day(request.POST.get("expires_on", "")),
            actor=request.user,
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("accounts:users")
    return _key_shown_once(request, key, plaintext, f"New key for {user.username}")


@require_POST
@admin_only
def key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    return _run(request, lambda: services.api_key_revoke(key=key, actor=request.user) and f"Key {key.display} revoked")


@require_POST
@admin_only
def key_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    try:
        new_key, plaintext = services.api_key_rotate(key=key, actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("accounts:users")
    return _key_shown_once(request, new_key, plaintext, f"Key {key.display} replaced")


@require_POST
@admin_only
def team_add(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "")
    return _run(request, lambda: services.team_create(name=name, actor=request.user) and f"Team {name.strip()} added")


@require_POST
@admin_only
def team_delete(request: HttpRequest, pk: int) -> HttpResponse:
    team = get_object_or_404(Team, pk=pk)
    return _run(request, lambda: services.team_delete(team=team, actor=request.user) or f"Team {team.name} deleted")


@require_POST
@admin_only
def preference_set(request: HttpRequest) -> HttpResponse:
    from projects.models import Project

    team = get_object_or_404(Team, pk=request.POST.get("team") or 0)
    project_id = request.POST.get("project", "")
    project = get_object_or_404(Project, pk=project_id) if project_id else None
    model = request.POST.get("completion_model", "")
    where = f"{team.name} / {project.name}" if project else team.name

    def apply() -> str:
        pref = services.team_preference_set(team=team, project=project, completion_model=model, actor=request.user)
        return f"{where}: {pref.completion_model}" if pref else f"{where}: preference cleared"

    return _run(request, apply)


def audit_section(request: HttpRequest) -> str:
    if not request.user.is_staff:
        return ""
    entries = selectors.audit_list(limit=50)
    return render_to_string("accounts/audit_section.html", {"entries": entries}, request=request)
