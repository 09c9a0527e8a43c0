"""The plugin API (DESIGN.md, Plugin API): Refact caps, OpenAI-compatible completions, chat and embeddings.

Completions, chat and embeddings are answered by `proxy`, which the plugin ASGI app (`hosting.asgi`)
serves in production and async Django views serve where a request goes through Django (the test
client); streams are relayed without a thread per stream. They authenticate with the same API-key
class as the DRF views and validate bodies with DRF serializers. Each is documented in the OpenAPI
schema through a DRF view class (`cls`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError, connections
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiKeyAuthentication, RememberedKeyMixin
from hosting import plugin_selectors
from hosting.catalogue import CHAT, COMPLETION, EMBEDDINGS
from hosting.limits import Refusal, Slot, limit_admit, limit_release
from hosting.plugin_selectors import UnavailableError
from hosting.proxy import (
    UPSTREAM_ERRORS,
    relay_events,
    request_session_reset,
    request_session_set,
    session_new,
    upstream_post,
)
from refact_site.bodylimit import too_large_message
from refact_site.exceptions import ApplicationError
from refact_site.middleware import outage_of, service_unavailable
from stats.buffer import usage_record

logger = logging.getLogger(__name__)
UPSTREAM_RETRY_AFTER_SECONDS = 5
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


# --- request bodies ---


class StopField(serializers.ListField):
    """OpenAI's `stop`: one string or a list of up to 4."""

    child = serializers.CharField(trim_whitespace=False, max_length=200)

    def __init__(self, **kwargs: Any) -> None:
        # A class attribute would not do: ListField builds its length validator from this argument only.
        kwargs.setdefault("max_length", 4)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        data = [data] if isinstance(data, str) else data
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            raise serializers.ValidationError("expected a string or a list of strings")
        return super().to_internal_value(data)


class PromptField(serializers.CharField):
    """OpenAI's `prompt`: one string (a list of exactly one string is accepted too)."""

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, str):
            raise serializers.ValidationError("expected a string")
        return super().to_internal_value(data)


class FiniteFloatField(serializers.FloatField):
    """A float that is a number: "NaN" passes DRF's range validators (every comparison with NaN is false)."""

    def to_internal_value(self, data: Any) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError("expected a finite number")
        return value


class SamplingFields(serializers.Serializer):
    model = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")
    max_tokens = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)
    temperature = FiniteFloatField(required=False, min_value=0.0, max_value=2.0)
    top_p = FiniteFloatField(required=False, min_value=0.0, max_value=1.0)
    stop = StopField(required=False)
    n = serializers.IntegerField(required=False, min_value=1, max_value=8)
    stream = serializers.BooleanField(required=False, default=False)
    seed = serializers.IntegerField(required=False, min_value=-(2**63), max_value=2**63 - 1)
    ignore_eos = serializers.BooleanField(required=False, help_text="Generate max_tokens even past end of text.")
    project = serializers.CharField(required=False, max_length=100, help_text="Routes by this project's preference.")


class CompletionInput(SamplingFields):
    prompt = PromptField(trim_whitespace=False, allow_blank=True, max_length=4_000_000)
    echo = serializers.BooleanField(required=False)


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]})
class MessageContentField(serializers.Field):
    """A message's `content`: a string, or OpenAI's list of text parts (joined here)."""

    def to_internal_value(self, data: Any) -> str:
        if data is None:
            return ""
        if isinstance(data, list):
            if not all(
                isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
                for part in data
            ):
                raise serializers.ValidationError('content parts must be {"type": "text", "text": ...}')
            data = "".join(part["text"] for part in data)
        if not isinstance(data, str):
            raise serializers.ValidationError("expected a string or a list of text parts")
        if len(data) > 4_000_000:
            raise serializers.ValidationError("at most 4,000,000 characters")
        return data

    def to_representation(self, value: str) -> str:
        return value


class ChatMessage(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant", "tool"])
    content = MessageContentField(required=False, default="")


class ChatInput(SamplingFields):
    messages = ChatMessage(many=True, allow_empty=False)


class EmbeddingsInput(serializers.Serializer):
    model = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")
    input = serializers.ListField(
        child=serializers.CharField(trim_whitespace=False, allow_blank=True, max_length=100_000), max_length=2048
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict) and isinstance(data.get("input"), str):
            data = {**data, "input": [data["input"]]}
        return super().to_internal_value(data)


ERROR = inline_serializer(
    "PluginError", {"detail": serializers.CharField(), "field": serializers.CharField(required=False)}
)
OPENAI_OBJECT = inline_serializer(
    "OpenAIObject", {"object": serializers.CharField(), "caps_version": serializers.IntegerField()}
)


# --- the async proxy views ---


@dataclass
class Prepared:
    user_id: int
    team_id: int | None
    key_id: str
    payload: dict[str, Any]
    url: str
    model: str
    stream: bool
    caps_version: int


def error_response(
    status: int, message: str, *, field: str | None = None, retry_after: int | None = None, **extra: Any
):
    body: dict[str, Any] = {"detail": message}
    if field:
        body["field"] = field
    body.update(extra)
    # OpenAI's shape as well, so that OpenAI clients show the message.
    body["error"] = {"message": message, "type": ERROR_TYPES.get(status, "api_error"), "param": field, "code": status}
    response = JsonResponse(body, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _first_error(errors: Any, path: str = "") -> tuple[str, str]:
    """The first (field path, message) of DRF's nested error structure."""
    if isinstance(errors, dict):
        for name, value in errors.items():
            field = name if name != "non_field_errors" else ""
            return _first_error(value, f"{path}.{field}".strip(".") if field else path)
    if isinstance(errors, list):
        for index, value in enumerate(errors):
            if value:
                nested = isinstance(value, (dict, list))
                return _first_error(value, f"{path}[{index}]" if nested and isinstance(value, dict) else path)
    return path, str(errors)


def _authenticate(request: HttpRequest, values: dict | None):
    try:
        result = ApiKeyAuthentication(remember=True).authenticate(request, values)
    except exceptions.Throttled as error:
        return error_response(429, str(error.detail), retry_after=int(error.wait or 1))
    except exceptions.AuthenticationFailed as error:
        response = error_response(401, str(error.detail))
        response["WWW-Authenticate"] = ApiKeyAuthentication().authenticate_header(request)
        return response
    if result is None:
        response = error_response(401, "Authentication credentials were not provided.")
        response["WWW-Authenticate"] = ApiKeyAuthentication().authenticate_header(request)
        return response
    return result


def _prepare_guarded(request, **options: Any):
    """`_prepare` on a healthy database connection.

    The plugin ASGI app keeps its database thread's connection from request to request (no
    request_started/finished signals close it), so a connection that a database restart broke is
    found by the first query that fails: it is dropped and the request tried once more on a new one
    (reads only, and the key's last-use touch is idempotent). A new connection that fails is not retried:
    the database is down, and the client hears so at once."""
    reused = any(connection.connection is not None for connection in connections.all(initialized_only=True))
    try:
        return _prepare(request, **options)
    except (InterfaceError, OperationalError):
        for connection in connections.all(initialized_only=True):
            connection.close()
        if not reused:  # a fresh connection failed: the database is down, not just restarted
            raise
    return _prepare(request, **options)


_validators = threading.local()


def _validator(serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    """One unbound instance per serializer class and thread, whose `run_validation` does what
    `is_valid` does. A new instance per request deep-copies every field, which costs six times the
    validation itself."""
    instances = _validators.__dict__
    instance = instances.get(serializer_class)
    if instance is None:
        instance = instances[serializer_class] = serializer_class()
    return instance


def _prepare(
    request: HttpRequest,
    *,
    values: dict | None,
    serializer_class: type[serializers.Serializer],
    capability: str,
    path: str,
):
    """Auth, validation and routing in one trip to the database thread; VALUES: what authentication
    reads from the cache, where it has been read already."""
    auth = _authenticate(request, values)
    if isinstance(auth, HttpResponse):
        return auth
    user, key = auth
    try:
        raw = request.body
    except RequestDataTooBig:
        field, message = too_large_message(request.path)
        return error_response(413, message, field=field)
    try:
        body = json.loads(raw or b"null", parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as error:
        return error_response(400, f"the body is not valid JSON: {error}", field="body")
    except RecursionError:
        return error_response(400, "the body is not valid JSON: nested too deeply", field="body")
    if not isinstance(body, dict):
        return error_response(400, "the body must be a JSON object", field="body")
    try:
        data = dict(_validator(serializer_class).run_validation(body))
    except serializers.ValidationError as error:
        field, message = _first_error(error.detail)
        return error_response(400, f"{field}: {message}" if field else message, field=field or "body")
    unencodable = _first_unencodable(data)
    if unencodable is not None:
        # JSON may spell a lone surrogate (\ud800); it is not text and cannot be sent on as UTF-8.
        return error_response(
            400, f"{unencodable}: contains a lone surrogate, which is not valid text", field=unencodable
        )
    try:
        project = data.pop("project", None)
        served = plugin_selectors.route_resolve(user=user, model=data["model"], capability=capability, project=project)
        _check_context(served=served, data=data)
        version = plugin_selectors.caps_version_for(user=user, project=project)
    except UnavailableError as error:
        return error_response(503, error.message, retry_after=error.retry_after, **_details(error))
    except ApplicationError as error:
        return error_response(error.status_code, error.message, **_details(error))
    data["model"] = served.name
    if capability == CHAT:
        data["messages"] = [dict(message) for message in data["messages"]]
    return Prepared(
        user_id=user.pk,
        team_id=user.team_id,
        key_id=key.key_id if key is not None else f"user-{user.pk}",
        payload=data,
        url=f"{served.endpoint.url}{path}",
        model=served.name,
        stream=bool(data.get("stream")),
        caps_version=version,
    )


def _first_unencodable(value: Any, path: str = "") -> str | None:
    """The path of the first string in VALUE that cannot be encoded as UTF-8, else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _first_unencodable(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".strip("."))
        if found is not None:
            return found
    return None


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON: refused, as DRF's strict parser refuses them on the other endpoints."""
    raise ValueError(f"{name} is not a valid JSON value")


def _details(error: ApplicationError) -> dict[str, Any]:
    details = dict(error.extra)
    if error.field:
        details["field"] = error.field
    return details


def _check_context(*, served, data: dict[str, Any]) -> None:
    """An over-long prompt is refused here with the context size, before it reaches the model."""
    if "prompt" in data:
        text = data["prompt"]
    elif "messages" in data:
        text = "\n".join(message["content"] for message in data["messages"])
    else:
        text = "\n".join(data["input"])
    n_ctx = served.n_ctx
    max_tokens = 0 if "input" in data else (data.get("max_tokens") or 0)
    if n_ctx and max_tokens >= n_ctx:
        # Never satisfiable, whatever the prompt: refused here rather than left to the inference server.
        raise ApplicationError(
            f"max_tokens: {max_tokens} does not fit the context size of {served.name} ({n_ctx} tokens)",
            field="max_tokens",
            n_ctx=n_ctx,
        )
    if not n_ctx or len(text) < n_ctx // 2:  # fewer characters than half the context cannot overflow it
        return
    tokens = plugin_selectors.token_count(model=served.base, text=text)
    if tokens is None:
        return
    if tokens + max_tokens > n_ctx:
        raise ApplicationError(
            f"the prompt is {tokens} tokens; with max_tokens {max_tokens} it exceeds "
            f"the context size of {served.name} ({n_ctx} tokens)",
            field="prompt" if "prompt" in data else ("messages" if "messages" in data else "input"),
            n_ctx=n_ctx,
            prompt_tokens=tokens,
        )


async def _nothing() -> None:
    return None


@dataclass
class Stream:
    """A streamed answer: SSE events relayed from the inference server (status 200).

    Served by the plugin ASGI app (`hosting.asgi`) straight to the connection, or wrapped in a
    StreamingHttpResponse when a view is called through Django (the test client). Closing `events`
    closes the upstream response and records usage; `finish`, awaited once the answer has ended or
    been abandoned, gives the in-flight slot back (after the last byte: with Redis that is a round trip
    the client need not wait for).
    """

    events: AsyncGenerator[bytes, None]
    finish: Callable[[], Awaitable[None]] = _nothing
    headers: tuple[tuple[str, str], ...] = (
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),  # nginx: pass events through as they come
    )


async def proxy(request, *, serializer_class, capability: str, path: str) -> HttpResponse | Stream:
    """One plugin request (an HttpRequest, or the ASGI app's PluginRequest) answered or streamed."""
    if request.method != "POST":
        return error_response(405, f"method {request.method} not allowed; use POST")
    started = time.monotonic()
    authentication = ApiKeyAuthentication(remember=True)
    slot: Refusal | Slot | None = None
    values = None
    released = False

    async def release() -> None:
        nonlocal released
        if isinstance(slot, Slot) and not released:
            released = True
            try:
                await limit_release(slot)
            except Exception as error:  # Redis went away mid-request: the slot's lease lapses instead
                logger.warning("could not give back the in-flight slot of key %s: %s", slot.key, error)

    try:
        try:
            credentials = authentication.credentials(request)
        except exceptions.AuthenticationFailed:
            credentials = None  # `_prepare` answers it
        if credentials is not None and credentials[0] is not None:
            # The key's slot is taken in the same trip to Redis that reads its failed-attempt counters and
            # the auth generation; a request refused below gives it back.
            key_id = credentials[0]
            slot, values = await limit_admit(key_id, authentication.cache_keys(request, key_id))
        prepared = await sync_to_async(_prepare_guarded)(
            request, values=values, serializer_class=serializer_class, capability=capability, path=path
        )
    except Exception as error:
        await release()
        part = outage_of(error)
        if part is None:
            raise
        logger.warning("%s unavailable while serving %s: %s", part, request.path, error)
        return service_unavailable(request, part)
    except BaseException:  # cancelled (the server stopping): its slot's renewal must not go on
        await release()
        raise
    if isinstance(prepared, HttpResponse):
        await release()
        return prepared
    if slot is None:  # authenticated without a key id: not the case today, but then it is taken now
        slot, _ = await limit_admit(prepared.key_id)
    if isinstance(slot, Refusal):
        return error_response(429, slot.message, retry_after=slot.retry_after)

    def record(status: int, *, first_token_ms: int | None = None, events: int = 0) -> None:
        usage_record(
            user_id=prepared.user_id,
            team_id=prepared.team_id,
            model=prepared.model,
            kind=capability,
            status=status,
            latency_ms=int((time.monotonic() - started) * 1000),
            first_token_ms=first_token_ms,
            streamed=prepared.stream,
            chunks=events,
        )

    try:
        upstream = await upstream_post(prepared.url, json.dumps(prepared.payload).encode())
    except TimeoutError:
        await release()
        return error_response(
            503,
            f"the inference server of {prepared.model!r} did not answer in time",
            field="model",
            retry_after=UPSTREAM_RETRY_AFTER_SECONDS,
            model=prepared.model,
        )
    except aiohttp.ClientError as error:
        await release()
        return error_response(
            503,
            f"the inference server of {prepared.model!r} is unreachable ({type(error).__name__})",
            field="model",
            retry_after=UPSTREAM_RETRY_AFTER_SECONDS,
            model=prepared.model,
        )
    except BaseException:
        await release()
        raise

    if upstream.status != 200 or not prepared.stream:
        try:
            content = await upstream.read()
        except UPSTREAM_ERRORS:
            await release()
            return error_response(
                503,
                f"the inference server of {prepared.model!r} broke off its answer",
                retry_after=UPSTREAM_RETRY_AFTER_SECONDS,
                model=prepared.model,
            )
        finally:
            upstream.close()  # a response read to its end is back in the pool already
        await release()
        record(upstream.status)
        return _relay_whole(upstream, content, caps_version=prepared.caps_version)

    async def stream():
        counter = {"events": 0}
        first_token_ms = None
        status = 200
        try:
            async for piece in relay_events(upstream, caps_version=prepared.caps_version, counter=counter):
                if first_token_ms is None:
                    first_token_ms = int((time.monotonic() - started) * 1000)
                yield piece
        except UPSTREAM_ERRORS as error:
            # The inference server went away mid-stream: the status line is long gone, so the error
            # travels as an event in OpenAI's error shape, which the openai client raises as APIError.
            logger.warning("inference server of %s broke off a stream: %r", prepared.model, error)
            status = 503  # usage statistics count it as failed, not served
            message = json.dumps(
                {
                    "error": {
                        "message": f"the inference server of {prepared.model!r} broke off the stream "
                        f"({type(error).__name__}); retry in a few seconds",
                        "type": "server_error",
                        "param": None,
                        "code": 503,
                    }
                }
            )
            yield f"data: {message}\n\ndata: [DONE]\n\n".encode()
        finally:
            # Recorded before any await: a client that hangs up cancels this task, and the next await
            # would raise and skip the rest.
            record(status, first_token_ms=first_token_ms, events=counter["events"])
            # Closing the upstream response drops its connection: the inference server stops generating.
            # (A stream read to its end has already gone back to the pool; closing it then does nothing.)
            upstream.close()

    return Stream(stream(), finish=release)


def _relay_whole(upstream: aiohttp.ClientResponse, content: bytes, *, caps_version: int) -> HttpResponse:
    status = upstream.status
    content_type = upstream.headers.get("content-type", "application/json")
    if status == 200 and content.startswith(b"{"):
        content = b'{"caps_version":' + str(caps_version).encode() + b"," + content[1:]
    if status in (502, 503, 504):
        response = HttpResponse(content, status=503, content_type=content_type)
        response["Retry-After"] = upstream.headers.get("retry-after", str(UPSTREAM_RETRY_AFTER_SECONDS))
        return response
    return HttpResponse(content, status=status, content_type=content_type)


# path -> (body serializer, capability); the upstream path is the same path on the inference server.
ENDPOINTS: dict[str, tuple[type[serializers.Serializer], str]] = {
    "/v1/completions": (CompletionInput, COMPLETION),
    "/v1/chat/completions": (ChatInput, CHAT),
    "/v1/embeddings": (EmbeddingsInput, EMBEDDINGS),
}


async def answer(request) -> HttpResponse | Stream:
    serializer_class, capability = ENDPOINTS[request.path]
    return await proxy(request, serializer_class=serializer_class, capability=capability, path=request.path)


# OpenAPI descriptions of the async views (drf-spectacular reads `cls` of a URL's callback).

PROXY_RESPONSES = {
    200: OpenApiResponse(OPENAI_OBJECT, description="The OpenAI-protocol answer; with `stream`, SSE `data:` events."),
    400: ERROR,
    401: ERROR,
    404: ERROR,
    429: ERROR,
    503: ERROR,
}


class CompletionsDoc(APIView):
    authentication_classes = [ApiKeyAuthentication]

    @extend_schema(
        operation_id="plugin_completions", request=CompletionInput, responses=PROXY_RESPONSES, tags=["plugin"]
    )
    def post(self, request: Request) -> Response:  # pragma: no cover - documentation only
        raise NotImplementedError


class ChatCompletionsDoc(APIView):
    authentication_classes = [ApiKeyAuthentication]

    @extend_schema(
        operation_id="plugin_chat_completions", request=ChatInput, responses=PROXY_RESPONSES, tags=["plugin"]
    )
    def post(self, request: Request) -> Response:  # pragma: no cover - documentation only
        raise NotImplementedError


class EmbeddingsDoc(APIView):
    authentication_classes = [ApiKeyAuthentication]

    @extend_schema(
        operation_id="plugin_embeddings", request=EmbeddingsInput, responses=PROXY_RESPONSES, tags=["plugin"]
    )
    def post(self, request: Request) -> Response:  # pragma: no cover - documentation only
        raise NotImplementedError


async def _closing(stream: Stream, session) -> AsyncGenerator[bytes, None]:
    try:
        async for event in stream.events:
            yield event
    finally:
        await stream.events.aclose()
        await stream.finish()
        await session.close()


def _plugin_view(doc: type[APIView]):
    """A hot endpoint as a Django view, documented by DOC (drf-spectacular reads a callback's `cls`).

    In production `hosting.asgi` serves these paths before Django's request cycle; the view answers
    where a request does go through Django (the test client)."""

    @csrf_exempt
    async def view(request: HttpRequest) -> HttpResponse:
        # Django's test client runs each request in a loop of its own: the upstream session lives
        # as long as the request, not as long as the loop.
        session = session_new()
        token = request_session_set(session)
        try:
            result = await answer(request)
        except BaseException:
            await session.close()
            raise
        finally:
            request_session_reset(token)
        if not isinstance(result, Stream):
            await session.close()
            return result
        response = StreamingHttpResponse(_closing(result, session))
        for name, value in result.headers:
            response[name] = value
        return response

    view.cls = doc  # type: ignore[attr-defined]
    view.initkwargs = {}  # type: ignore[attr-defined]
    return view


completions = _plugin_view(CompletionsDoc)
chat_completions = _plugin_view(ChatCompletionsDoc)
embeddings = _plugin_view(EmbeddingsDoc)


# --- DRF views ---


class PluginView(RememberedKeyMixin, APIView):
    """A plugin endpoint answered by DRF (the hot ones are `proxy`'s)."""


class CapsView(PluginView):
    """Capabilities for the calling user, in Refact's self-hosted format."""

    @extend_schema(
        operation_id="plugin_caps",
        parameters=[OpenApiParameter("project", str, description="Use this project's model preference.")],
        responses={200: OpenApiResponse(description="The caps document"), 401: ERROR, 404: ERROR},
        tags=["plugin"],
    )
    def get(self, request: Request) -> Response:
        project = request.query_params.get("project")
        return Response(plugin_selectors.caps_document(user=request.user, project=project))


@extend_schema_view(get=extend_schema(operation_id="plugin_caps_legacy"))
class LegacyCapsView(CapsView):
    """The same capabilities at the path older plugins read."""


class LoginView(PluginView):
    """What the plugin shows after connecting: the account and whether it may use the server."""

    @extend_schema(
        operation_id="plugin_login",
        responses=inline_serializer(
            "PluginLogin",
            {
                "retcode": serializers.CharField(),
                "account": serializers.CharField(),
                "team": serializers.CharField(allow_null=True),
                "inference": serializers.CharField(),
            },
        ),
        tags=["plugin"],
    )
    def get(self, request: Request) -> Response:
        user = request.user
        return Response(
            {
                "retcode": "OK",
                "account": user.username,
                "team": user.team.name if user.team_id else None,
                "inference": "PRO" if plugin_selectors.served_models() else "FREE",
                "inference_url": request.build_absolute_uri("/v1"),
            }
        )


class ModelsView(PluginView):
    """The models this server serves now (LoRAs as `base:run:checkpoint`), in OpenAI's list format."""

    @extend_schema(
        operation_id="plugin_models", responses={200: OpenApiResponse(description="OpenAI model list")}, tags=["plugin"]
    )
    def get(self, request: Request) -> Response:
        models = plugin_selectors.served_models()
        data = [
            {
                "id": name,
                "object": "model",
                "owned_by": "refact",
                "root": served.base,
                "parent": served.base if name != served.base else None,
                "n_ctx": served.n_ctx,
                "state": served.endpoint.state,
                "capabilities": sorted(c for c in (COMPLETION, CHAT, EMBEDDINGS) if served.supports(c)),
            }
            for name, served in sorted(models.items())
        ]
        return Response({"object": "list", "data": data})


class TokenizerView(PluginView):
    """tokenizer.json of a model (read from its weights on this server)."""

    @extend_schema(
        operation_id="plugin_tokenizer",
        responses={200: OpenApiResponse(description="tokenizer.json"), 401: ERROR, 404: ERROR},
        tags=["plugin"],
    )
    def get(self, request: Request, model: str) -> HttpResponse:
        base = model.split(":", 1)[0]
        path = plugin_selectors.tokenizer_path(model=base)
        if path is None:
            from refact_site.exceptions import NotFoundError

            raise NotFoundError(f"no tokenizer for model {model!r} on this server", field="model", model=model)
        return FileResponse(path.open("rb"), content_type="application/json")
