from __future__ import annotations

from django.core.management.base import CommandError

from projects.models import Project
from refact_site.exceptions import ApplicationError


def team_by_name(name: str | None):
    if not name:
        return None
    from accounts.models import Team

    try:
        return Team.objects.get(name=name)
    except Team.DoesNotExist:
        raise CommandError(f"--team: no team named {name!r}") from None


def project_by_name(name: str, team_name: str | None) -> Project:
    projects = Project.objects.filter(name=name)
    if team_name:
        projects = projects.filter(team=team_by_name(team_name))
    found = list(projects[:2])
    if not found:
        raise CommandError(f"PROJECT: no project named {name!r}")
    if len(found) > 1:
        raise CommandError(f"PROJECT: several teams have a project named {name!r}; name one with --team")
    return found[0]


def fail(error: ApplicationError) -> CommandError:
    return CommandError(error.message)
