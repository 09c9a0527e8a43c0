"""REST: runs (list, start, show, rename, cancel, delete), metrics, log, checkpoints (download), files."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finetune.models import FinetuneCheckpoint, FinetuneFile, FinetuneLogLine, FinetuneMetric, FinetuneRun
from finetune.parameters import PARAMETERS
from finetune.selectors import finetune_run_get, finetune_runs_visible
from finetune.services import finetune_run_cancel, finetune_run_create, finetune_run_delete, finetune_run_rename
from projects.models import Project
from refact_site.exceptions import NotFoundError, query_int


class RunOutput(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name")
    best_checkpoint = serializers.SerializerMethodField()

    class Meta:
        model = FinetuneRun
        fields = [
            "id",
            "name",
            "project",
            "base_model",
            "status",
            "progress",
            "eta_seconds",
            "error",
            "steps_done",
            "total_steps",
            "parameters",
            "train_embeddings",
            "keep_smaller",
            "gpus",
            "evaluation",
            "created_at",
            "started_at",
            "finished_at",
            "best_checkpoint",
        ]

    def get_best_checkpoint(self, run: FinetuneRun) -> str | None:
        best = next((c for c in run.checkpoints.all() if c.is_best), None)
        return best.name if best else None


class MetricOutput(serializers.ModelSerializer):
    class Meta:
        model = FinetuneMetric
        fields = ["step", "train_loss", "test_loss", "lr", "tokens", "tokens_per_second", "memory_mb", "created_at"]


class LogOutput(serializers.ModelSerializer):
    class Meta:
        model = FinetuneLogLine
        fields = ["id", "created_at", "text"]


class CheckpointOutput(serializers.ModelSerializer):
    class Meta:
        model = FinetuneCheckpoint
        fields = ["name", "step", "train_loss", "test_loss", "size_bytes", "is_best", "created_at"]


class RunFileOutput(serializers.ModelSerializer):
    class Meta:
        model = FinetuneFile
        fields = ["path", "language", "size", "loss", "status", "reason", "split", "marked_test"]


def projects_visible(user) -> object:
    if user.is_superuser or user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(team_id=user.team_id) if user.team_id else Project.objects.none()


class RunListApi(APIView):
    class InputSerializer(serializers.Serializer):
        project = serializers.IntegerField()
        model = serializers.CharField()
        name = serializers.CharField()
        parameters = serializers.DictField(required=False, default=dict)
        train_embeddings = serializers.BooleanField(required=False, allow_null=True, default=None)
        keep_smaller = serializers.BooleanField(required=False, default=False)
        gpus = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)

    @extend_schema(responses=RunOutput(many=True))
    def get(self, request: Request) -> Response:
        runs = finetune_runs_visible(user=request.user).prefetch_related("checkpoints")
        return Response(RunOutput(runs, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: RunOutput})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = projects_visible(request.user).filter(pk=data.validated_data["project"]).first()
        if project is None:
            raise NotFoundError("project: no such project", field="project")
        run = finetune_run_create(
            project=project,
            base_model=data.validated_data["model"],
            name=data.validated_data["name"],
            parameters=data.validated_data["parameters"],
            train_embeddings=data.validated_data["train_embeddings"],
            keep_smaller=data.validated_data["keep_smaller"],
            gpus=data.validated_data["gpus"],
            user=request.user,
        )
        return Response(RunOutput(run).data, status=status.HTTP_201_CREATED)


class RunDetailApi(APIView):
    class RenameSerializer(serializers.Serializer):
        name = serializers.CharField()

    @extend_schema(responses=RunOutput)
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunOutput(finetune_run_get(user=request.user, run_id=run_id)).data)

    @extend_schema(request=RenameSerializer, responses=RunOutput)
    def patch(self, request: Request, run_id: int) -> Response:
        run = finetune_run_get(user=request.user, run_id=run_id)
        data = self.RenameSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        renamed = finetune_run_rename(run=run, name=data.validated_data["name"], user=request.user)
        return Response(RunOutput(renamed).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, run_id: int) -> Response:
        finetune_run_delete(run=finetune_run_get(user=request.user, run_id=run_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunCancelApi(APIView):
    @extend_schema(request=None, responses=RunOutput)
    def post(self, request: Request, run_id: int) -> Response:
        run = finetune_run_cancel(run=finetune_run_get(user=request.user, run_id=run_id), user=request.user)
        return Response(RunOutput(run).data)


class RunMetricsApi(APIView):
    @extend_schema(responses=MetricOutput(many=True))
    def get(self, request: Request, run_id: int) -> Response:
        run = finetune_run_get(user=request.user, run_id=run_id)
        return Response(MetricOutput(run.metrics.all(), many=True).data)


class RunLogApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="only lines after this line id")],
        responses=LogOutput(many=True),
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = finetune_run_get(user=request.user, run_id=run_id)
        after = query_int(request.query_params, "after", default=0)
        return Response(LogOutput(run.log_lines.filter(pk__gt=after), many=True).data)


class RunCheckpointsApi(APIView):
    @extend_schema(responses=CheckpointOutput(many=True))
    def get(self, request: Request, run_id: int) -> Response:
        run = finetune_run_get(user=request.user, run_id=run_id)
        return Response(CheckpointOutput(run.checkpoints.all(), many=True).data)


class RunCheckpointDownloadApi(APIView):
    @extend_schema(responses={(200, "application/zip"): bytes})
    def get(self, request: Request, run_id: int, name: str) -> FileResponse:
        run = finetune_run_get(user=request.user, run_id=run_id)
        checkpoint = run.checkpoints.filter(name=name).first()
        if checkpoint is None:
            raise NotFoundError(f"checkpoint: run {run.name} has no checkpoint {name!r}", field="checkpoint")
        directory = Path(settings.DATA_DIR / checkpoint.path)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for item in sorted(directory.iterdir()):
                if item.is_file():
                    archive.write(item, f"{checkpoint.name}/{item.name}")
        buffer.seek(0)
        return FileResponse(buffer, as_attachment=True, filename=f"{run.name}-{checkpoint.name}.zip")


class RunFilesApi(APIView):
    @extend_schema(responses=RunFileOutput(many=True))
    def get(self, request: Request, run_id: int) -> Response:
        run = finetune_run_get(user=request.user, run_id=run_id)
        return Response(RunFileOutput(run.files.all(), many=True).data)


class ParameterOutput(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    type = serializers.CharField()
    default = serializers.JSONField()
    minimum = serializers.FloatField(allow_null=True)
    maximum = serializers.FloatField(allow_null=True)
    choices = serializers.ListField(child=serializers.JSONField())
    help = serializers.CharField(allow_blank=True)


class ParametersApi(APIView):
    """The Advanced settings: each parameter's default and allowed range (the launch dialog reads it)."""

    @extend_schema(responses=ParameterOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(
            [
                {
                    "name": p.name,
                    "label": p.label,
                    "type": p.kind.__name__,
                    "default": p.default,
                    "minimum": p.minimum,
                    "maximum": p.maximum,
                    "choices": list(p.choices),
                    "help": p.help,
                }
                for p in PARAMETERS
            ]
        )
