from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Team
from accounts.services import team_create, user_add
from refact_site.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Add a user (Enterprise edition) and print their new API key once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--team", help="team name (created when it does not exist)")
        parser.add_argument("--email", default="")

    def handle(self, *args, **options):
        try:
            team = None
            if options["team"]:
                team = Team.objects.filter(name__iexact=options["team"].strip()).first()
                if team is None:
                    team = team_create(name=options["team"])
                    self.stderr.write(f"Team {team.name!r} created")
            user, key = user_add(username=options["username"], email=options["email"], team=team)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stderr.write(f"User {user.username!r} added; their API key (shown only now):")
        self.stdout.write(key)
