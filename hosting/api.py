"""REST API under /api/hosting/: devices, catalogue, assignments, LoRA mode, OpenAI integration.

Reads for any signed-in user; writes for admins only. Thin: every change goes through hosting.services.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hosting import selectors, services
from hosting.serializers import (
    AssignmentChangeSerializer,
    AssignmentInSerializer,
    AssignmentSerializer,
    CatalogueModelSerializer,
    LoraActivateSerializer,
    NodeSerializer,
    OpenAISerializer,
)
from hosting.services import OPENAI_MODELS


class ReadAnyoneWriteAdmin(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or bool(request.user.is_staff)


class HostingView(APIView):
    permission_classes = [ReadAnyoneWriteAdmin]


class DeviceListView(HostingView):
    @extend_schema(responses=NodeSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(NodeSerializer(selectors.node_views(), many=True).data)


class CatalogueView(HostingView):
    @extend_schema(responses=CatalogueModelSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(CatalogueModelSerializer(selectors.catalogue_views(), many=True).data)


def _assignment(model: str) -> dict:
    return AssignmentSerializer(selectors.assignment_view(assignment=selectors.assignment_get(model=model))).data


class AssignmentListView(HostingView):
    @extend_schema(responses=AssignmentSerializer(many=True))
    def get(self, request: Request) -> Response:
        views = [selectors.assignment_view(assignment=a) for a in selectors.assignment_list()]
        return Response(AssignmentSerializer(views, many=True).data)

    @extend_schema(request=AssignmentInSerializer, responses={201: AssignmentSerializer})
    def post(self, request: Request) -> Response:
        body = AssignmentInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        assignment = services.model_assign(actor=request.user, **body.validated_data)
        return Response(_assignment(assignment.model), status=status.HTTP_201_CREATED)


class AssignmentDetailView(HostingView):
    @extend_schema(responses=AssignmentSerializer)
    def get(self, request: Request, model: str) -> Response:
        return Response(_assignment(model))

    @extend_schema(request=AssignmentChangeSerializer, responses=AssignmentSerializer)
    def patch(self, request: Request, model: str) -> Response:
        selectors.assignment_get(model=model)
        body = AssignmentChangeSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        services.model_assign(actor=request.user, model=model, **body.validated_data)
        return Response(_assignment(model))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, model: str) -> Response:
        services.model_unassign(actor=request.user, model=model)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LoraView(HostingView):
    @extend_schema(request=LoraActivateSerializer, responses=AssignmentSerializer)
    def post(self, request: Request, model: str) -> Response:
        body = LoraActivateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        services.lora_activate(
            actor=request.user,
            model=model,
            mode=data["mode"],
            run=data.get("run") or None,
            checkpoint=data.get("checkpoint") or None,
        )
        return Response(_assignment(model))


class LoraDetailView(HostingView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, model: str, pk: int) -> Response:
        services.lora_deactivate(actor=request.user, model=model, selection_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _openai() -> dict:
    state = selectors.openai_integration()
    return {
        "enabled": state.enabled,
        "has_key": state.has_key,
        "models": list(state.models),
        "available_models": list(OPENAI_MODELS),
        "warning": selectors.OPENAI_WARNING,
    }


class OpenAIView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses=OpenAISerializer)
    def get(self, request: Request) -> Response:
        return Response(OpenAISerializer(_openai()).data)

    @extend_schema(request=OpenAISerializer, responses=OpenAISerializer)
    def put(self, request: Request) -> Response:
        body = OpenAISerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        services.integration_openai_save(
            actor=request.user, enabled=data["enabled"], api_key=data.get("api_key"), models=data.get("models")
        )
        return Response(OpenAISerializer(_openai()).data)
