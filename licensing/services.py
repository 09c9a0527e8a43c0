from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.services import audit_record
from licensing import tokens
from licensing.models import License
from licensing.selectors import current_license, trusted_keys
from refact_site.exceptions import ApplicationError, NotFoundError


@transaction.atomic
def license_activate(*, token: str, actor=None) -> License:
    """Verify TOKEN and make it the current license (the previous one is kept, marked removed)."""
    token = (token or "").strip()
    if not token:
        raise ApplicationError("License token is required", field="token")
    try:
        payload = tokens.verify(token, trusted=trusted_keys())
    except tokens.LicenseError as error:
        raise ApplicationError(str(error), field="token", reason=error.reason) from None
    now = timezone.now()
    License.objects.select_for_update().filter(removed_at__isnull=True).update(removed_at=now)
    license = License.objects.create(
        token=token,
        license_id=payload.lid,
        customer=payload.customer,
        seats=payload.seats,
        features=list(payload.features),
        kid=payload.kid,
        issued_at=payload.iat,
        valid_from=payload.nbf,
        expires_at=payload.exp,
        activated_by=actor if actor is not None and actor.pk else None,
    )
    audit_record(
        actor=actor,
        action="license.activated",
        target=license,
        diff={"customer": payload.customer, "seats": payload.seats, "expires_at": payload.exp, "kid": payload.kid},
    )
    return license


@transaction.atomic
def license_remove(*, actor=None) -> License:
    """Turn the Enterprise edition off; users, teams and keys stay, ready for re-activation."""
    current = current_license()
    if current is None:
        raise NotFoundError("No license is active")
    current.removed_at = timezone.now()
    current.save(update_fields=["removed_at"])  # a save, not an update: its signal tells authentication
    audit_record(actor=actor, action="license.removed", target=current, diff={"customer": current.customer})
    return current
