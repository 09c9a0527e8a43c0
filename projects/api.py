"""REST views for projects: thin, calling services and selectors; every object scoped to the caller's team."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import is_admin
from projects import selectors, services
from projects.models import REASONS, Project, ScannedFile, Source, SshKey
from projects.scanning import scan_state
from projects.uploads import check_upload_size, limited_upload_handlers
from refact_site.exceptions import ApplicationError


def _owner_team(request: Request, requested_team_id: int | None) -> Any:
    """Non-admins create for their own team; an admin may name a team (or none: Self-hosted)."""
    user = request.user
    if not is_admin(user):
        return user.team
    if requested_team_id is None:
        return None
    from accounts.models import Team

    try:
        return Team.objects.get(pk=requested_team_id)
    except Team.DoesNotExist:
        raise ApplicationError("team: no such team", field="team") from None


class ProjectOutput(serializers.ModelSerializer):
    team = serializers.CharField(source="team.name", default=None, read_only=True)
    sources_url = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", "name", "team", "created_at", "type_selection", "include_masks", "exclude_masks", "sources_url"]

    def get_sources_url(self, project: Project) -> str:
        return reverse("projects-api:sources", args=[project.pk])


class SourceOutput(serializers.ModelSerializer):
    ssh_key = serializers.CharField(source="ssh_key.name", default=None, read_only=True)

    class Meta:
        model = Source
        fields = [
            "id",
            "name",
            "kind",
            "url",
            "branch",
            "ssh_key",
            "upload_name",
            "is_test",
            "status",
            "error",
            "last_scan_at",
            "created_at",
        ]


class SshKeyOutput(serializers.ModelSerializer):
    class Meta:
        model = SshKey
        fields = ["id", "name", "public_key", "fingerprint", "created_at"]


class FileOutput(serializers.ModelSerializer):
    path = serializers.SerializerMethodField()
    source = serializers.CharField(source="source.name")
    accepted = serializers.BooleanField()

    class Meta:
        model = ScannedFile
        fields = [
            "path",
            "source",
            "file_type",
            "language",
            "size",
            "lines",
            "digit_ratio",
            "sha256",
            "is_test",
            "accepted",
            "reason",
        ]

    def get_path(self, row: ScannedFile) -> str:
        return f"{row.source.name}/{row.path}"


ScanOutput = inline_serializer(
    "ScanState",
    {
        "id": serializers.IntegerField(),
        "project": serializers.IntegerField(),
        "status": serializers.CharField(),
        "progress": serializers.FloatField(),
        "files_total": serializers.IntegerField(),
        "files_done": serializers.IntegerField(),
        "files_per_second": serializers.FloatField(),
        "eta_seconds": serializers.FloatField(allow_null=True),
        "error": serializers.CharField(),
        "summary": serializers.DictField(),
        "failed_sources": serializers.ListField(child=serializers.DictField()),
    },
)


class ProjectListView(APIView):
    class ProjectCreateInput(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        team = serializers.IntegerField(required=False, allow_null=True)

    @extend_schema(responses=ProjectOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(ProjectOutput(selectors.project_list(user=request.user), many=True).data)

    @extend_schema(request=ProjectCreateInput, responses={201: ProjectOutput})
    def post(self, request: Request) -> Response:
        data = self.ProjectCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(
            name=data.validated_data["name"],
            team=_owner_team(request, data.validated_data.get("team")),
            actor=request.user,
        )
        return Response(ProjectOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    class ProjectRenameInput(serializers.Serializer):
        name = serializers.CharField(max_length=100)

    @extend_schema(responses=ProjectOutput)
    def get(self, request: Request, project_id: int) -> Response:
        return Response(ProjectOutput(selectors.project_get(user=request.user, project_id=project_id)).data)

    @extend_schema(request=ProjectRenameInput, responses=ProjectOutput)
    def patch(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(user=request.user, project_id=project_id)
        data = self.ProjectRenameInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.project_rename(project=project, name=data.validated_data["name"], actor=request.user)
        return Response(ProjectOutput(project).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(user=request.user, project_id=project_id)
        services.project_delete(project=project, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceListView(APIView):
    class SourceAddInput(serializers.Serializer):
        kind = serializers.ChoiceField(choices=["git", "link"])
        url = serializers.CharField(max_length=2000)
        branch = serializers.CharField(max_length=250, required=False, allow_blank=True, default="")
        ssh_key = serializers.IntegerField(required=False, allow_null=True)

    @extend_schema(responses=SourceOutput(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(user=request.user, project_id=project_id)
        return Response(SourceOutput(project.sources.select_related("ssh_key"), many=True).data)

    @extend_schema(request=SourceAddInput, responses={201: SourceOutput})
    def post(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(user=request.user, project_id=project_id)
        data = self.SourceAddInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values["kind"] == "git":
            key = None
            if values.get("ssh_key") is not None:
                key = selectors.ssh_key_get(user=request.user, key_id=values["ssh_key"])
            source = services.source_add_git(
                project=project, url=values["url"], branch=values["branch"], ssh_key=key, actor=request.user
            )
        else:
            if values["branch"] or values.get("ssh_key") is not None:
                raise ApplicationError("branch: only git sources have a branch or an SSH key", field="branch")
            source = services.source_add_link(project=project, url=values["url"], actor=request.user)
        return Response(SourceOutput(source).data, status=status.HTTP_201_CREATED)


class SourceUploadView(APIView):
    """Multipart upload of an archive or a single file; too large is refused with 413 before reading."""

    parser_classes = [MultiPartParser]

    def initialize_request(self, request: Any, *args: Any, **kwargs: Any) -> Request:
        request.upload_handlers = limited_upload_handlers(request)
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "SourceUpload", {"file": serializers.FileField(), "is_test": serializers.BooleanField(required=False)}
            )
        },
        responses={201: SourceOutput},
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(user=request.user, project_id=project_id)
        check_upload_size(request)
        upload = request.FILES.get("file")
        if upload is None:
            raise ApplicationError("file: choose a file to upload", field="file")
        is_test = str(request.data.get("is_test", "")).lower() in ("1", "true", "on", "yes")
        source = services.source_add_upload(
            project=project, file_name=upload.name, stream=upload, is_test=is_test, actor=request.user
        )
        return Response(SourceOutput(source).data, status=status.HTTP_201_CREATED)


class SourceDetailView(APIView):
    class SourceUpdateInput(serializers.Serializer):
        is_test = serializers.BooleanField()

    @extend_schema(responses=SourceOutput)
    def get(self, request: Request, source_id: int) -> Response:
        return Response(SourceOutput(selectors.source_get(user=request.user, source_id=source_id)).data)

    @extend_schema(request=SourceUpdateInput, responses=SourceOutput)
    def patch(self, request: Request, source_id: int) -> Response:
        source = selectors.source_get(user=request.user, source_id=source_id)
        data = self.SourceUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.source_set_test(source=source, is_test=data.validated_data["is_test"], actor=request.user)
        return Response(SourceOutput(source).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, source_id: int) -> Response:
        source = selectors.source_get(user=request.user, source_id=source_id)
        services.source_delete(source=source, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScanView(APIView):
    @extend_schema(responses={200: ScanOutput, 204: None})
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(user=request.user, project_id=project_id)
        scan = selectors.current_scan(project=project)
        return Response(scan_state(scan)) if scan else Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: ScanOutput})
    def post(self, request: Request, project_id: int) -> Response:
        """Run 'git pull', scan files."""
        project = selectors.project_get(user=request.user, project_id=project_id)
        scan = services.project_scan_start(project=project, actor=request.user)
        return Response(scan_state(scan), status=status.HTTP_202_ACCEPTED)


class FilterView(APIView):
    class FilterUpdateInput(serializers.Serializer):
        type_selection = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False)
        include_masks = serializers.CharField(required=False, allow_blank=True)
        exclude_masks = serializers.CharField(required=False, allow_blank=True)

    FilterOutput = inline_serializer(
        "FileTypeFilter",
        {
            "types": serializers.ListField(child=serializers.DictField()),
            "type_selection": serializers.ListField(child=serializers.CharField()),
            "include_masks": serializers.CharField(),
            "exclude_masks": serializers.CharField(),
            "summary": serializers.DictField(),
        },
    )

    def _state(self, project: Project) -> dict[str, Any]:
        scan = selectors.latest_scan(project=project)
        return {
            "types": selectors.file_type_counts(project=project),
            "type_selection": project.type_selection or [],
            "include_masks": project.include_masks,
            "exclude_masks": project.exclude_masks,
            "summary": scan.summary if scan else {},
        }

    @extend_schema(responses=FilterOutput)
    def get(self, request: Request, project_id: int) -> Response:
        return Response(self._state(selectors.project_get(user=request.user, project_id=project_id)))

    @extend_schema(request=FilterUpdateInput, responses=FilterOutput)
    def put(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(user=request.user, project_id=project_id)
        data = self.FilterUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.project_filter_update(project=project, actor=request.user, **data.validated_data)
        project.refresh_from_db()
        return Response(self._state(project))


FILE_FILTERS = [
    OpenApiParameter("reason", str, description="Exact reason, e.g. 'Duplicates'; 'accepted' for accepted files."),
    OpenApiParameter("type", str, description="File type (extension)."),
    OpenApiParameter("accepted", bool),
]


def _filtered_files(request: Request, project: Project):
    reason = request.query_params.get("reason")
    accepted = request.query_params.get("accepted")
    if reason is not None and reason not in (*REASONS, "accepted", ""):
        raise ApplicationError(f"reason: one of {', '.join(REASONS)} or 'accepted'", field="reason")
    if reason == "accepted":
        reason = ""
    return selectors.scanned_files(
        project=project,
        reason=reason,
        file_type=request.query_params.get("type"),
        accepted=None if accepted is None else accepted.lower() in ("1", "true", "yes"),
    )


class FileListView(APIView):
    """The Full list: accepted and rejected files with reasons (latest scan), paginated and filterable."""

    pagination_class = LimitOffsetPagination  # also tells the schema the list is paginated

    @extend_schema(parameters=FILE_FILTERS, responses=FileOutput(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(user=request.user, project_id=project_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(_filtered_files(request, project), request, view=self)
        return paginator.get_paginated_response(FileOutput(page, many=True).data)


class _Echo:
    def write(self, value: str) -> str:
        return value


class FileDownloadView(APIView):
    """The Full list as CSV (streamed: fine for 100,000 files)."""

    @extend_schema(parameters=FILE_FILTERS, responses={(200, "text/csv"): str})
    def get(self, request: Request, project_id: int) -> StreamingHttpResponse:
        project = selectors.project_get(user=request.user, project_id=project_id)
        rows = _filtered_files(request, project)
        writer = csv.writer(_Echo())

        def lines() -> Iterator[str]:
            yield writer.writerow(["path", "type", "language", "size", "lines", "sha256", "test", "status", "reason"])
            for row in rows.iterator(2000):
                yield writer.writerow(
                    [
                        f"{row.source.name}/{row.path}",
                        row.file_type,
                        row.language,
                        row.size,
                        row.lines,
                        row.sha256,
                        "yes" if row.is_test else "",
                        "accepted" if not row.reason else "rejected",
                        row.reason,
                    ]
                )

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="project-{project.pk}-files.csv"'
        return response


class SshKeyListView(APIView):
    class SshKeyCreateInput(serializers.Serializer):
        name = serializers.CharField(max_length=100)

    @extend_schema(responses=SshKeyOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(SshKeyOutput(selectors.ssh_key_list(user=request.user), many=True).data)

    @extend_schema(request=SshKeyCreateInput, responses={201: SshKeyOutput})
    def post(self, request: Request) -> Response:
        data = self.SshKeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        key = services.ssh_key_create(
            name=data.validated_data["name"], team=_owner_team(request, None), actor=request.user
        )
        return Response(SshKeyOutput(key).data, status=status.HTTP_201_CREATED)


class SshKeyDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, key_id: int) -> Response:
        key = selectors.ssh_key_get(user=request.user, key_id=key_id)
        services.ssh_key_delete(key=key, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
