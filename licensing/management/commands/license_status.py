from __future__ import annotations

from django.core.management.base import BaseCommand

from licensing.selectors import license_state, seats_used


class Command(BaseCommand):
    help = "Print the edition, and the license's customer, seats used/total and expiry."

    def handle(self, *args, **options):
        state = license_state()
        lines = [f"Edition: {'Enterprise' if state.active else 'Self-hosted'}"]
        if state.license is not None:
            license = state.license
            lines += [
                f"Customer: {license.customer}",
                f"Seats: {seats_used()} used of {license.seats}",
                f"Expires: {license.expires_at:%Y-%m-%d %H:%M} UTC",
                f"License id: {license.license_id} (key {license.kid})",
            ]
        if state.problem:
            lines.append(f"Not active: {state.problem}")
        if state.warning:
            lines.append(f"Warning: {state.warning}")
        self.stdout.write("\n".join(lines))
