from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from projects.management.commands._common import fail, team_by_name
from projects.services import project_create
from refact_site.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create a project (owned by a team, or by the admin when no team is named)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--team", help="The owning team's name (Enterprise).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = project_create(name=options["name"], team=team_by_name(options["team"]))
        except ApplicationError as error:
            raise fail(error) from None
        self.stdout.write(f"project {project.name!r} created (id {project.pk})")
