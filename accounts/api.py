"""REST views for accounts: thin, calling services and selectors; every lookup is scoped (404 across teams)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import ApiKey, AuditEntry, Team, TeamPreference, User
from refact_site.exceptions import NotFoundError, query_int


def require_admin(request: Request, what: str) -> None:
    if not selectors.is_admin(request.user):
        raise PermissionDenied(f"Only the admin can {what}")


def team_or_error(team_id, *, viewer: User, field: str = "team") -> Team | None:
    if team_id in (None, ""):
        return None
    team = selectors.team_list_visible(viewer=viewer).filter(pk=team_id).first()
    if team is None:
        raise NotFoundError(f"Team {team_id} not found", field=field)
    return team


# --- serializers ---


class TeamRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name"]


class UserSerializer(serializers.ModelSerializer):
    team = TeamRefSerializer(read_only=True, allow_null=True)
    is_admin = serializers.BooleanField(source="is_staff", read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "email", "team", "is_active", "is_admin", "date_joined"]


class UserCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    email = serializers.CharField(required=False, allow_blank=True, default="")
    team = serializers.IntegerField(required=False, allow_null=True, default=None, help_text="team id")


class UserUpdateSerializer(serializers.Serializer):
    email = serializers.CharField(required=False, allow_blank=True)
    team = serializers.IntegerField(required=False, allow_null=True, help_text="team id, null: no team")
    is_active = serializers.BooleanField(required=False)


class UserCreatedSerializer(UserSerializer):
    api_key = serializers.CharField(read_only=True, help_text="the new key; shown only in this response")

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "api_key"]


class ApiKeySerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    revoked = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "key_id", "display", "name", "user", "created_at", "expires_at", "revoked", "last_used"]


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, default="default", max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    user = serializers.IntegerField(required=False, allow_null=True, default=None, help_text="admin only; default: you")


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="the full key; shown only in this response")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class TeamSerializer(serializers.ModelSerializer):
    members = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["id", "name", "created_at", "members"]

    def get_members(self, team: Team) -> list[str]:
        return [user.username for user in team.members.all()]


class TeamWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class PreferenceSerializer(serializers.ModelSerializer):
    team = TeamRefSerializer(read_only=True)
    project = serializers.SerializerMethodField()

    class Meta:
        model = TeamPreference
        fields = ["id", "team", "project", "completion_model", "updated_at"]

    def get_project(self, pref: TeamPreference) -> dict | None:
        return {"id": pref.project_id, "name": pref.project.name} if pref.project_id else None


class PreferenceWriteSerializer(serializers.Serializer):
    team = serializers.IntegerField(help_text="team id")
    project = serializers.IntegerField(required=False, allow_null=True, default=None, help_text="project id or null")
    completion_model = serializers.CharField(allow_blank=True, help_text="model or base:run:checkpoint; empty clears")


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "created_at", "actor_name", "action", "target_type", "target_id", "target_repr", "diff"]


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    is_admin = serializers.BooleanField()


# --- views ---


class MeView(APIView):
    """Who the caller is (by session or API key)."""

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        user = request.user
        return Response(
            {
                "username": user.username,
                "email": user.email,
                "team": user.team.name if user.team_id else None,
                "is_admin": user.is_staff,
            }
        )


class UserListView(generics.ListAPIView):
    """Users: admins see everyone, others themselves and their teammates. POST (admin) adds one."""

    serializer_class = UserSerializer

    def get_queryset(self) -> QuerySet[User]:
        return selectors.user_list_visible(viewer=self.request.user)

    @extend_schema(request=UserCreateSerializer, responses={201: UserCreatedSerializer})
    def post(self, request: Request) -> Response:
        require_admin(request, "add users")
        data = UserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = team_or_error(data.validated_data["team"], viewer=request.user)
        user, key = services.user_add(
            username=data.validated_data["username"], email=data.validated_data["email"], team=team, actor=request.user
        )
        body = UserSerializer(user).data | {"api_key": key}
        return Response(body, status=status.HTTP_201_CREATED)


class UserDetailView(APIView):
    def get_object(self, request: Request, pk: int) -> User:
        return get_object_or_404(selectors.user_list_visible(viewer=request.user), pk=pk)

    @extend_schema(responses=UserSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(UserSerializer(self.get_object(request, pk)).data)

    @extend_schema(request=UserUpdateSerializer, responses=UserSerializer)
    @method_decorator(transaction.atomic)  # several changes: all or none
    def patch(self, request: Request, pk: int) -> Response:
        user = self.get_object(request, pk)
        require_admin(request, "change users")
        data = UserUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = data.validated_data
        if "email" in changes:
            services.user_set_email(user=user, email=changes["email"], actor=request.user)
        if "team" in changes:
            team = team_or_error(changes["team"], viewer=request.user)
            services.user_set_team(user=user, team=team, actor=request.user)
        if "is_active" in changes:
            services.user_set_active(user=user, active=changes["is_active"], actor=request.user)
        user.refresh_from_db()
        return Response(UserSerializer(user).data)


class ApiKeyListView(generics.ListAPIView):
    """API keys: yours (admins: everyone's, `?user=<id>` to filter). POST creates one (shown once)."""

    serializer_class = ApiKeySerializer

    def get_queryset(self) -> QuerySet[ApiKey]:
        keys = selectors.api_key_list_visible(viewer=self.request.user)
        user = query_int(self.request.query_params, "user", minimum=1)
        return keys if user is None else keys.filter(user_id=user)

    @extend_schema(parameters=[OpenApiParameter("user", int, description="only this user's keys")])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request: Request) -> Response:
        data = ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        owner = request.user
        if data.validated_data["user"] not in (None, request.user.pk):
            owner = get_object_or_404(selectors.user_list_visible(viewer=request.user), pk=data.validated_data["user"])
            require_admin(request, "create keys for other users")
        key, plaintext = services.api_key_create(
            user=owner,
            name=data.validated_data["name"],
            expires_at=data.validated_data["expires_at"],
            actor=request.user,
        )
        return Response(ApiKeySerializer(key).data | {"key": plaintext}, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    def get_object(self, request: Request, pk: int) -> ApiKey:
        return get_object_or_404(selectors.api_key_list_visible(viewer=request.user), pk=pk)

    @extend_schema(responses=ApiKeySerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ApiKeySerializer(self.get_object(request, pk)).data)

    @extend_schema(responses=ApiKeySerializer, description="Revoke the key (kept for the record).")
    def delete(self, request: Request, pk: int) -> Response:
        key = services.api_key_revoke(key=self.get_object(request, pk), actor=request.user)
        return Response(ApiKeySerializer(key).data)


class ApiKeyRotateView(APIView):
    @extend_schema(request=None, responses={201: ApiKeyCreatedSerializer})
    def post(self, request: Request, pk: int) -> Response:
        key = get_object_or_404(selectors.api_key_list_visible(viewer=request.user), pk=pk)
        new_key, plaintext = services.api_key_rotate(key=key, actor=request.user)
        return Response(ApiKeySerializer(new_key).data | {"key": plaintext}, status=status.HTTP_201_CREATED)


class TeamListView(generics.ListAPIView):
    """Teams: admins see all, others their own. POST (admin) creates one."""

    serializer_class = TeamSerializer

    def get_queryset(self) -> QuerySet[Team]:
        return selectors.team_list_visible(viewer=self.request.user).prefetch_related("members")

    @extend_schema(request=TeamWriteSerializer, responses={201: TeamSerializer})
    def post(self, request: Request) -> Response:
        require_admin(request, "create teams")
        data = TeamWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = services.team_create(name=data.validated_data["name"], actor=request.user)
        return Response(TeamSerializer(team).data, status=status.HTTP_201_CREATED)


class TeamDetailView(APIView):
    def get_object(self, request: Request, pk: int) -> Team:
        return get_object_or_404(selectors.team_list_visible(viewer=request.user), pk=pk)

    @extend_schema(responses=TeamSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TeamSerializer(self.get_object(request, pk)).data)

    @extend_schema(request=TeamWriteSerializer, responses=TeamSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        team = self.get_object(request, pk)
        require_admin(request, "rename teams")
        data = TeamWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.team_rename(team=team, name=data.validated_data["name"], actor=request.user)
        return Response(TeamSerializer(team).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        team = self.get_object(request, pk)
        require_admin(request, "delete teams")
        services.team_delete(team=team, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PreferenceListView(generics.ListAPIView):
    """Team preferences (default completion model and per-project overrides). PUT (admin) sets or clears one."""

    serializer_class = PreferenceSerializer

    def get_queryset(self) -> QuerySet[TeamPreference]:
        return selectors.team_preference_list_visible(viewer=self.request.user)

    @extend_schema(request=PreferenceWriteSerializer, responses={200: PreferenceSerializer, 204: None})
    def put(self, request: Request) -> Response:
        from projects.models import Project

        data = PreferenceWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = team_or_error(data.validated_data["team"], viewer=request.user)
        require_admin(request, "change team preferences")
        project = None
        if data.validated_data["project"] is not None:
            project = Project.objects.filter(pk=data.validated_data["project"], team=team).first()
            if project is None:
                raise NotFoundError(f"Project {data.validated_data['project']} not found in this team", field="project")
        pref = services.team_preference_set(
            team=team, project=project, completion_model=data.validated_data["completion_model"], actor=request.user
        )
        if pref is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(PreferenceSerializer(pref).data)


class PreferenceDetailView(APIView):
    def get_object(self, request: Request, pk: int) -> TeamPreference:
        return get_object_or_404(selectors.team_preference_list_visible(viewer=request.user), pk=pk)

    @extend_schema(responses=PreferenceSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(PreferenceSerializer(self.get_object(request, pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        pref = self.get_object(request, pk)
        require_admin(request, "change team preferences")
        services.team_preference_set(team=pref.team, project=pref.project, completion_model="", actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditListView(generics.ListAPIView):
    """The audit log, newest first (admin only)."""

    serializer_class = AuditEntrySerializer
    permission_classes = [IsAdminUser]

    def get_queryset(self) -> QuerySet[AuditEntry]:
        return selectors.audit_list()
