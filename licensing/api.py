from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from licensing.selectors import license_state, seats_used
from licensing.services import license_activate, license_remove


class LicenseStatusSerializer(serializers.Serializer):
    edition = serializers.CharField()
    active = serializers.BooleanField()
    problem = serializers.CharField(allow_null=True)
    warning = serializers.CharField(allow_null=True)
    customer = serializers.CharField(allow_null=True)
    license_id = serializers.CharField(allow_null=True)
    seats = serializers.IntegerField(allow_null=True)
    seats_used = serializers.IntegerField()
    expires_at = serializers.DateTimeField(allow_null=True)
    features = serializers.ListField(child=serializers.CharField())


class ActivateSerializer(serializers.Serializer):
    token = serializers.CharField(trim_whitespace=True)


class EditionSerializer(serializers.Serializer):
    edition = serializers.CharField()


def status_body() -> dict:
    state = license_state()
    license = state.license
    return {
        "edition": state.edition,
        "active": state.active,
        "problem": state.problem,
        "warning": state.warning,
        "customer": license.customer if license else None,
        "license_id": license.license_id if license else None,
        "seats": license.seats if license else None,
        "seats_used": seats_used(),
        "expires_at": license.expires_at if license else None,
        "features": list(license.features) if license else [],
    }


class LicenseView(APIView):
    """The license (admin only): status, activation (POST a token), removal (DELETE)."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=LicenseStatusSerializer)
    def get(self, request: Request) -> Response:
        return Response(LicenseStatusSerializer(status_body()).data)

    @extend_schema(request=ActivateSerializer, responses={201: LicenseStatusSerializer})
    def post(self, request: Request) -> Response:
        serializer = ActivateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        license_activate(token=serializer.validated_data["token"], actor=request.user)
        return Response(LicenseStatusSerializer(status_body()).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        license_remove(actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EditionView(APIView):
    """The edition this server runs (any signed-in user)."""

    @extend_schema(responses=EditionSerializer)
    def get(self, request: Request) -> Response:
        return Response({"edition": license_state().edition})
