"""Telemetry endpoints of the plugin API (`/stats/telemetry-basic`, `/stats/telemetry-snippets`, `/stats/rh-stats`)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import RememberedKeyMixin
from stats.selectors import robot_human_stats
from stats.services import MAX_RECORDS, telemetry_store


class TelemetryInput(serializers.Serializer):
    records = serializers.ListField(child=serializers.DictField(), max_length=MAX_RECORDS)
    teletype = serializers.CharField(required=False, allow_blank=True, max_length=50, default="")
    ts_start = serializers.IntegerField(required=False)
    ts_end = serializers.IntegerField(required=False)
    enduser_client_version = serializers.CharField(required=False, allow_blank=True, max_length=100)


STORED = inline_serializer(
    "TelemetryStored", {"retcode": serializers.CharField(), "stored": serializers.IntegerField()}
)


class TelemetryView(RememberedKeyMixin, APIView):
    kind = "basic"

    def post(self, request: Request) -> Response:
        body = TelemetryInput(data=request.data)
        body.is_valid(raise_exception=True)
        stored = telemetry_store(
            user=request.user,
            kind=self.kind,
            teletype=body.validated_data["teletype"],
            records=body.validated_data["records"],
        )
        return Response({"retcode": "OK", "stored": stored})


class TelemetryBasicView(TelemetryView):
    """Counters from the plugin: completions shown and accepted, characters written by the model and by hand."""

    kind = "basic"

    @extend_schema(operation_id="plugin_telemetry_basic", request=TelemetryInput, responses=STORED, tags=["plugin"])
    def post(self, request: Request) -> Response:
        return super().post(request)


class TelemetrySnippetsView(TelemetryView):
    """Accepted completions as the user corrected them."""

    kind = "snippet"

    @extend_schema(operation_id="plugin_telemetry_snippets", request=TelemetryInput, responses=STORED, tags=["plugin"])
    def post(self, request: Request) -> Response:
        return super().post(request)


class RobotHumanStatsView(RememberedKeyMixin, APIView):
    """The caller's own share of code written by the model over the last 30 days."""

    @extend_schema(
        operation_id="plugin_rh_stats",
        responses=inline_serializer(
            "RobotHumanStats",
            {
                "days": serializers.IntegerField(),
                "robot_characters": serializers.IntegerField(),
                "human_characters": serializers.IntegerField(),
                "robot_share": serializers.FloatField(),
                "completions_reported": serializers.IntegerField(),
                "completions_served": serializers.IntegerField(),
            },
        ),
        tags=["plugin"],
    )
    def get(self, request: Request) -> Response:
        return Response(robot_human_stats(user=request.user))
