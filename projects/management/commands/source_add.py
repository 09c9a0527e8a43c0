from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from projects import services
from projects.management.commands._common import fail, project_by_name
from projects.models import SshKey
from refact_site.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Add a source to a project: a git repository, an archive by link, or a local file or archive."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project")
        kind = parser.add_mutually_exclusive_group(required=True)
        kind.add_argument("--git", metavar="URL", help="https://, ssh:// or user@host:path remote")
        kind.add_argument("--url", metavar="URL", help="link to a .zip, .tar.gz, .tgz, .tar.bz2 or .tar archive")
        kind.add_argument("--file", metavar="PATH", help="a local file or archive to upload")
        parser.add_argument("--branch", default="", help="git only: the branch to clone")
        parser.add_argument("--ssh-key", metavar="NAME", help="git only: the SSH key (see Settings) for ssh remotes")
        parser.add_argument("--test-set", action="store_true", help="--file only: hold the file out as a test file")
        parser.add_argument("--team", help="The project's team, when several teams use the same project name.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_by_name(options["project"], options["team"])
        if (options["branch"] or options["ssh_key"]) and not options["git"]:
            raise CommandError("--branch and --ssh-key go with --git")
        if options["test_set"] and not options["file"]:
            raise CommandError("--test-set goes with --file")
        try:
            if options["git"]:
                key = None
                if options["ssh_key"]:
                    key = SshKey.objects.filter(name=options["ssh_key"], team=project.team).first()
                    if key is None:
                        raise CommandError(f"--ssh-key: no SSH key named {options['ssh_key']!r}")
                source = services.source_add_git(
                    project=project, url=options["git"], branch=options["branch"], ssh_key=key
                )
            elif options["url"]:
                source = services.source_add_link(project=project, url=options["url"])
            else:
                path = Path(options["file"])
                if not path.is_file():
                    raise CommandError(f"--file: {str(path)!r} is not a readable file")
                source = services.source_add_upload(
                    project=project, file_name=path.name, stream=path, is_test=options["test_set"]
                )
        except ApplicationError as error:
            raise fail(error) from None
        self.stdout.write(f"source {source.name!r} ({source.get_kind_display()}) added to {project.name!r}")
