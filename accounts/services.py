from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import models, transaction
from django.utils import timezone

from accounts.models import ApiKey, AuditEntry, Team, TeamPreference, User
from refact_site.exceptions import ApplicationError, ConflictError, NotFoundError

logger = logging.getLogger(__name__)

KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
SECRET_RE = re.compile(r"[A-Za-z0-9_\-]{40,64}")
LAST_USED_RESOLUTION = timedelta(minutes=1)
USERNAME_RE = re.compile(r"[\w.@+\-]+")
RUN_NAME_RE = re.compile(r"[0-9a-zA-Z_.\-]{1,30}")


@dataclass(frozen=True)
class AdminBootstrap:
    user: User
    created: bool
    # Set only when a password was generated: it is shown once and never stored in clear.
    generated_password: str | None = None


@transaction.atomic
def admin_bootstrap(*, token: str | None = None, username: str | None = None) -> AdminBootstrap:
    """Make sure the admin exists; ENTERPRISE_ADMIN_TOKEN, when set, is its password on every start.

    An operator who forgot the password sets a new token and restarts; no data is touched.
    Without a token, a random password is generated for a new admin and returned once.
    """
    token = settings.ENTERPRISE_ADMIN_TOKEN if token is None else token
    username = username or settings.REFACT_ADMIN_USERNAME
    user = User.objects.select_for_update().filter(username=username).first()
    created = user is None
    if user is None:
        user = User(username=username, is_staff=True, is_superuser=True, is_active=True)
    generated = None
    if token:
        if created or not user.check_password(token):
            user.set_password(token)
    elif created:
        generated = secrets.token_urlsafe(15)
        user.set_password(generated)
    user.is_staff = user.is_superuser = user.is_active = True
    user.save()
    return AdminBootstrap(user=user, created=created, generated_password=generated)


# --- API keys ---


def api_key_hash(secret: str) -> str:
    """HMAC-SHA256 of the secret under the server's pepper: a stolen table alone verifies nothing."""
    return hmac.new(settings.REFACT_API_KEY_PEPPER.encode(), secret.encode(), hashlib.sha256).hexdigest()


def api_key_parse(plaintext: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed `rfx_<id>.<secret>`, else None."""
    if not plaintext.startswith(ApiKey.PREFIX):
        return None
    key_id, dot, secret = plaintext[len(ApiKey.PREFIX) :].partition(".")
    if not dot or not KEY_ID_RE.fullmatch(key_id) or not SECRET_RE.fullmatch(secret):
        return None
    return key_id, secret


def _new_key_material() -> tuple[str, str]:
    # 64-bit public id, 256-bit secret (token_urlsafe never contains ".").
    return secrets.token_hex(8), secrets.token_urlsafe(32)


@transaction.atomic
def api_key_create(
    *, user: User, name: str = "default", expires_at: datetime | None = None, actor: User | None = None
) -> tuple[ApiKey, str]:
    """A new key for USER; the plaintext is returned here once and never stored."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ApplicationError("Key name must be 1 to 100 characters", field="name")
    if not user.is_staff:
        require_enterprise("API keys for users other than the admin")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("Expiry must be in the future", field="expires_at")
    key_id, secret = _new_key_material()
    key = ApiKey.objects.create(
        user=user, name=name, key_id=key_id, secret_hash=api_key_hash(secret), last4=secret[-4:], expires_at=expires_at
    )
    audit_record(
        actor=actor,
        action="api_key.created",
        target=key,
        diff={"user": user.username, "name": name, "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return key, f"{ApiKey.PREFIX}{key_id}.{secret}"


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: User | None = None) -> ApiKey:
    """Revoke (kept for the record, refused from now on). Revoking twice is a no-op."""
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(actor=actor, action="api_key.revoked", target=key, diff={"user": key.user.username})
    return key


@transaction.atomic
def api_key_rotate(*, key: ApiKey, actor: User | None = None) -> tuple[ApiKey, str]:
    """Revoke KEY and create its replacement with the same name, owner and expiry."""
    key = api_key_revoke(key=key, actor=actor)
    expires_at = key.expires_at if key.expires_at and key.expires_at > timezone.now() else None
    return api_key_create(user=key.user, name=key.name, expires_at=expires_at, actor=actor)


def api_key_find(reference: str) -> ApiKey:
    """A key by its public id, `rfx_<id>`, its display form or the full key."""
    reference = (reference or "").strip()
    if reference.startswith(ApiKey.PREFIX):
        reference = reference[len(ApiKey.PREFIX) :]
    key_id = reference.split(".")[0]
    key = ApiKey.objects.select_related("user").filter(key_id=key_id).first() if KEY_ID_RE.fullmatch(key_id) else None
    if key is None:
        raise NotFoundError(f"No API key with id {key_id!r}", field="key_id")
    return key


def api_key_touch(*, key: ApiKey, now: datetime | None = None) -> None:
    """Record use, at most once a minute per key (a conditional UPDATE, so concurrent requests write once)."""
    now = now or timezone.now()
    if key.last_used is not None and now - key.last_used < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=key.pk).filter(
        models.Q(last_used__isnull=True) | models.Q(last_used__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used=now)
    key.last_used = now


# --- audit log ---


def audit_record(*, actor: User | None, action: str, target: Any, diff: dict | None = None) -> AuditEntry:
    """Append one audit row. TARGET is a model instance, a string, or None."""
    if isinstance(target, models.Model):
        target_type = target._meta.label_lower
        target_id = str(target.pk)
    else:
        target_type, target_id = "", ""
    actor = actor if actor is not None and getattr(actor, "pk", None) else None
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else "system",
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=str(target)[:200] if target is not None else "",
        diff=_jsonable(diff or {}),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --- users and teams (Enterprise edition) ---


class LicenseRequired(ApplicationError):
    status_code = 403


def require_enterprise(what: str) -> None:
    from licensing.selectors import license_state

    state = license_state()
    if not state.active:
        raise LicenseRequired(f"{what} needs an active Enterprise license ({state.problem}); activate one in Settings")


def _require_seat() -> None:
    from licensing.models import License
    from licensing.selectors import license_state, seats_used

    # Lock the current license row: concurrent additions take seats one after the other.
    list(License.objects.select_for_update().filter(removed_at__isnull=True).order_by().values_list("pk"))
    seats = license_state().seats
    used = seats_used()
    if used >= seats:
        raise ApplicationError(
            f"All {seats} licensed seats are in use ({used} active users); deactivate a user or extend the license",
            field="username",
        )


def _clean_username(username: str) -> str:
    username = (username or "").strip()
    if not username or len(username) > 150 or not USERNAME_RE.fullmatch(username):
        raise ApplicationError("Username must be 1 to 150 characters: letters, digits and @ . + - _", field="username")
    if User.objects.filter(username__iexact=username).exists():
        raise ConflictError(f"User {username!r} already exists", field="username")
    return username


def _clean_email(email: str) -> str:
    email = (email or "").strip()
    if email:
        try:
            validate_email(email)
        except DjangoValidationError:
            raise ApplicationError(f"Email {email!r} is not a valid address", field="email") from None
    return email


@transaction.atomic
def user_add(
    *, username: str, email: str = "", team: Team | None = None, actor: User | None = None
) -> tuple[User, str]:
    """A new (non-admin) user and their first API key; the key's plaintext is returned once."""
    require_enterprise("Adding users")
    username = _clean_username(username)
    email = _clean_email(email)
    _require_seat()
    user = User(username=username, email=email, team=team, is_active=True)
    user.set_unusable_password()  # plugins authenticate with the API key; the web UI is the admin's
    user.save()
    audit_record(
        actor=actor, action="user.added", target=user, diff={"email": email, "team": team.name if team else None}
    )
    _key, plaintext = api_key_create(user=user, name="default", actor=actor)
    return user, plaintext


@transaction.atomic
def user_set_team(*, user: User, team: Team | None, actor: User | None = None) -> User:
    require_enterprise("Changing teams")
    before = user.team.name if user.team_id else None
    if user.team_id != (team.pk if team else None):
        user.team = team
        user.save(update_fields=["team"])
        audit_record(
            actor=actor, action="user.team_changed", target=user, diff={"team": [before, team.name if team else None]}
        )
    return user


@transaction.atomic
def user_set_email(*, user: User, email: str, actor: User | None = None) -> User:
    email = _clean_email(email)
    if email != user.email:
        audit_record(actor=actor, action="user.email_changed", target=user, diff={"email": [user.email, email]})
        user.email = email
        user.save(update_fields=["email"])
    return user


@transaction.atomic
def user_set_active(*, user: User, active: bool, actor: User | None = None) -> User:
    """Deactivate (keys refused, seat freed, nothing deleted) or reactivate (takes a seat again)."""
    if user.is_staff and not active:
        raise ApplicationError("The admin cannot be deactivated", field="is_active")
    if user.is_active == active:
        return user
    require_enterprise("Reactivating users" if active else "Deactivating users")
    if active and not user.is_staff:
        _require_seat()
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit_record(actor=actor, action="user.reactivated" if active else "user.deactivated", target=user)
    return user


def _clean_team_name(name: str, *, exclude: Team | None = None) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ApplicationError("Team name must be 1 to 100 characters", field="name")
    clash = Team.objects.filter(name__iexact=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude.pk)
    if clash.exists():
        raise ConflictError(f"Team {name!r} already exists", field="name")
    return name


@transaction.atomic
def team_create(*, name: str, actor: User | None = None) -> Team:
    require_enterprise("Creating teams")
    team = Team.objects.create(name=_clean_team_name(name))
    audit_record(actor=actor, action="team.created", target=team)
    return team


@transaction.atomic
def team_rename(*, team: Team, name: str, actor: User | None = None) -> Team:
    require_enterprise("Renaming teams")
    name = _clean_team_name(name, exclude=team)
    if name != team.name:
        audit_record(actor=actor, action="team.renamed", target=team, diff={"name": [team.name, name]})
        team.name = name
        team.save(update_fields=["name"])
    return team


@transaction.atomic
def team_delete(*, team: Team, actor: User | None = None) -> None:
    """Delete a team with no projects; its members stay, without a team."""
    require_enterprise("Deleting teams")
    if team.projects.exists():
        raise ConflictError(f"Team {team.name!r} owns projects; move or delete them first", field="team")
    audit_record(
        actor=actor,
        action="team.deleted",
        target=team,
        diff={"members": list(team.members.values_list("username", flat=True))},
    )
    team.delete()


# --- team preferences ---


def validate_completion_model(name: str, *, field: str = "completion_model") -> str:
    """A hosted model able to complete, or a LoRA `base:run:checkpoint` of one."""
    from finetune.selectors import lora_resolve
    from hosting.selectors import model_get

    name = (name or "").strip()
    if not name:
        raise ApplicationError("Model name is required", field=field)
    base, *lora = name.split(":")
    if lora and (len(lora) != 2 or not all(lora)):
        raise ApplicationError(f"{name!r}: a LoRA is named base:run:checkpoint", field=field)
    spec = model_get(base)
    if spec is None:
        raise ApplicationError(f"Unknown model {base!r}", field=field)
    if not spec.supports("completion"):
        raise ApplicationError(f"Model {base!r} cannot do code completion", field=field)
    if lora:
        run, checkpoint = lora
        if not RUN_NAME_RE.fullmatch(run):
            raise ApplicationError(f"{name!r}: run name {run!r} is not valid", field=field)
        # Until fine-tune runs exist the resolver answers None: then only the base model is checked.
        ref = lora_resolve(base_model=base, run=run, checkpoint=checkpoint)
        if ref is not None:
            if ref.base_model != base:
                raise ApplicationError(f"Run {run!r} fine-tunes {ref.base_model!r}, not {base!r}", field=field)
            name = ref.published_name
    return name


@transaction.atomic
def team_preference_set(
    *, team: Team, completion_model: str | None, project=None, actor: User | None = None
) -> TeamPreference | None:
    """Set (or, with an empty model, clear) the team's default or its override for PROJECT."""
    require_enterprise("Team preferences")
    if project is not None and project.team_id != team.pk:
        raise NotFoundError("Project not found", field="project")
    current = TeamPreference.objects.select_for_update().filter(team=team, project=project).order_by("pk").first()
    before = current.completion_model if current else None
    if not (completion_model or "").strip():
        if current is not None:
            current.delete()
            audit_record(
                actor=actor,
                action="team.preference_cleared",
                target=team,
                diff={"project": project.name if project else None, "completion_model": [before, None]},
            )
        return None
    model = validate_completion_model(completion_model)
    if current is None:
        current = TeamPreference.objects.create(team=team, project=project, completion_model=model)
    elif current.completion_model != model:
        current.completion_model = model
        current.save(update_fields=["completion_model", "updated_at"])
    else:
        return current
    audit_record(
        actor=actor,
        action="team.preference_changed",
        target=team,
        diff={"project": project.name if project else None, "completion_model": [before, model]},
    )
    return current
