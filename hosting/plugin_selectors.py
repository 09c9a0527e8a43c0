"""Reads behind the plugin API: which inference server answers which model, and the caps document.

Routing: the model named in the request, else the caller's team preference (per project when given),
else the server default (the first ready model with the capability).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from accounts.selectors import preferred_model as account_preferred_model
from hosting.catalogue import CHAT, COMPLETION, EMBEDDINGS, ModelSpec
from hosting.selectors import ServingEndpoint, model_get, serving_endpoints
from refact_site.exceptions import ApplicationError, NotFoundError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

CLOUD_NAME = "Refact Self-Hosted"
COMPLETIONS_ENDPOINT = "/v1/completions"
CHAT_ENDPOINT = "/v1/chat/completions"
EMBEDDINGS_ENDPOINT = "/v1/embeddings"
TELEMETRY_BASIC_ENDPOINT = "/stats/telemetry-basic"
TELEMETRY_SNIPPETS_ENDPOINT = "/stats/telemetry-snippets"
TELEMETRY_RETRIEVE_ENDPOINT = "/stats/rh-stats"
# The serving side reports a model as loading for as long as it loads: clients retry after this.
LOADING_RETRY_AFTER_SECONDS = 5


class UnavailableError(ApplicationError):
    """The model is known but its inference server is loading, failed or unreachable: retry later."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = LOADING_RETRY_AFTER_SECONDS, **extra: Any):
        super().__init__(message, **extra)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ServedModel:
    name: str  # what clients ask for: the base model or a LoRA as `base:run:checkpoint`
    base: str
    endpoint: ServingEndpoint
    spec: ModelSpec | None

    @property
    def n_ctx(self) -> int:
        return self.endpoint.n_ctx or (self.spec.n_ctx if self.spec else 0)

    def supports(self, capability: str) -> bool:
        # Without a catalogue entry an OpenAI-protocol server is taken to complete and chat.
        return self.spec.supports(capability) if self.spec else capability in (COMPLETION, CHAT)


@dataclass(frozen=True)
class Snapshot:
    """Every served model at one moment, read at most once a second per process."""

    models: dict[str, ServedModel]
    taken_at: float


_snapshot_lock = threading.Lock()
_snapshot: Snapshot | None = None
SNAPSHOT_SECONDS = 1.0


def configured_endpoints() -> list[ServingEndpoint]:
    """Inference servers named in REFACT_INFERENCE_SERVERS (`MODEL=URL`, a LoRA as `base:run:ckpt=URL`)."""
    by_url: dict[tuple[str, str], list[str]] = {}
    for entry in settings.REFACT_INFERENCE_SERVERS:
        name, _, url = entry.partition("=")
        base = name.split(":", 1)[0]
        loras = by_url.setdefault((base, url.rstrip("/")), [])
        if name != base:
            loras.append(name)
    endpoints = []
    for (base, url), loras in by_url.items():
        spec = model_get(base)
        endpoints.append(
            ServingEndpoint(
                model=base, url=url, state="ready", reason="", n_ctx=spec.n_ctx if spec else 0, loras=tuple(loras)
            )
        )
    return endpoints


def _take_snapshot() -> Snapshot:
    models: dict[str, ServedModel] = {}
    specs: dict[str, ModelSpec | None] = {}
    for endpoint in [*serving_endpoints(), *configured_endpoints()]:
        if endpoint.model not in specs:
            specs[endpoint.model] = model_get(endpoint.model)
        spec = specs[endpoint.model]
        for name in (endpoint.model, *endpoint.loras):
            current = models.get(name)
            # Several servers of one model (several nodes): prefer a ready one.
            if current is None or (current.endpoint.state != "ready" and endpoint.state == "ready"):
                models[name] = ServedModel(name=name, base=endpoint.model, endpoint=endpoint, spec=spec)
    return Snapshot(models=models, taken_at=time.monotonic())


def served_models() -> dict[str, ServedModel]:
    global _snapshot
    snapshot = _snapshot
    if snapshot is None or time.monotonic() - snapshot.taken_at > SNAPSHOT_SECONDS:
        with _snapshot_lock:
            snapshot = _snapshot = _take_snapshot()
    return snapshot.models


def served_models_forget() -> None:
    """Read the served models afresh on the next request (after an assignment or LoRA change)."""
    global _snapshot
    _snapshot = None
    _versions.clear()


def preferred_model(*, user, project: str | None = None) -> str | None:
    """The caller's team preference; the one for PROJECT (a project name) wins over the team's."""
    return account_preferred_model(user=user, project=project or None)


def default_model(*, models: dict[str, ServedModel], capability: str, preferred: str | None) -> str:
    if preferred and preferred in models and models[preferred].supports(capability):
        return preferred
    candidates = [served for served in models.values() if served.supports(capability) and served.name == served.base]
    ready = [served for served in candidates if served.endpoint.state == "ready"]
    chosen = (ready or candidates)[0] if candidates else None
    return chosen.name if chosen else ""


def route_resolve(*, user, model: str, capability: str, project=None) -> ServedModel:
    """The served model a request goes to; 404 naming an unknown model or LoRA, 503 while it loads."""
    models = served_models()
    name = model or default_model(
        models=models, capability=capability, preferred=preferred_model(user=user, project=project)
    )
    if not name:
        raise UnavailableError(f"no model with the {capability} capability is being served", field="model")
    served = models.get(name)
    if served is None:
        if ":" in name:
            base = name.split(":", 1)[0]
            raise NotFoundError(f"LoRA {name!r} is not active for model {base!r}", field="model", model=name)
        raise NotFoundError(f"model {name!r} not found", field="model", model=name)
    if not served.supports(capability):
        raise NotFoundError(f"model {name!r} does not support {capability}", field="model", model=name)
    state = served.endpoint.state
    if state == "loading":
        raise UnavailableError(f"model {name!r} is loading", field="model", model=name)
    if state != "ready":
        reason = f": {served.endpoint.reason}" if served.endpoint.reason else ""
        raise UnavailableError(f"model {name!r} is not available ({state}{reason})", field="model", model=name)
    return served


def _model_record(served: ServedModel) -> dict[str, Any]:
    record: dict[str, Any] = {"n_ctx": served.n_ctx, "supports_scratchpads": {}}
    fim = served.spec.fim if served.spec else None
    if fim is not None:
        record["supports_scratchpads"] = {
            "FIM-PSM": {
                "fim_prefix": fim.prefix_token,
                "fim_suffix": fim.suffix_token,
                "fim_middle": fim.middle_token,
                "eot": fim.eot_token,
            }
        }
        record["default_scratchpad"] = "FIM-PSM"
    return record


def caps_document(*, user, project=None) -> dict[str, Any]:
    """Capabilities in Refact's self-hosted format; `caps_version` follows every model/LoRA/preference change."""
    models = served_models()
    preferred = preferred_model(user=user, project=project)
    completion = {name: _model_record(m) for name, m in models.items() if m.supports(COMPLETION)}
    chat = {
        name: {**_model_record(m), "supports_scratchpads": {"PASSTHROUGH": {}}, "supports_tools": m.supports("toolbox")}
        for name, m in models.items()
        if m.supports(CHAT)
    }
    embedding = {
        name: {"n_ctx": m.n_ctx, "size": int((m.spec.extra if m.spec else {}).get("embedding_dim", 0))}
        for name, m in models.items()
        if m.supports(EMBEDDINGS)
    }
    document: dict[str, Any] = {
        "cloud_name": CLOUD_NAME,
        "completion": {
            "endpoint": COMPLETIONS_ENDPOINT,
            "models": completion,
            "default_model": default_model(models=models, capability=COMPLETION, preferred=preferred),
        },
        "chat": {
            "endpoint": CHAT_ENDPOINT,
            "models": chat,
            "default_model": default_model(models=models, capability=CHAT, preferred=preferred),
        },
        "embedding": {
            "endpoint": EMBEDDINGS_ENDPOINT,
            "models": embedding,
            "default_model": default_model(models=models, capability=EMBEDDINGS, preferred=None),
        },
        "telemetry_endpoints": {
            "telemetry_basic_endpoint": TELEMETRY_BASIC_ENDPOINT,
            "telemetry_corrected_snippets_endpoint": TELEMETRY_SNIPPETS_ENDPOINT,
            "telemetry_basic_retrieve_my_own_endpoint": TELEMETRY_RETRIEVE_ENDPOINT,
        },
        "tokenizer_endpoints": {name: f"/tokenizer/{name}" for name in models if ":" not in name},
        "customization": "",
    }
    document["caps_version"] = caps_version(document=document, models=models)
    return document


_versions: dict[tuple, tuple[int, float]] = {}


def caps_version_for(*, user, project: str | None = None) -> int:
    """The caller's caps_version, recomputed at most once a second per team, role and project."""
    key = (user.team_id, user.is_staff, project or None)
    cached = _versions.get(key)
    if cached is not None and time.monotonic() - cached[1] < SNAPSHOT_SECONDS:
        return cached[0]
    version = caps_document(user=user, project=project)["caps_version"]
    if len(_versions) > 10_000:
        _versions.clear()
    _versions[key] = (version, time.monotonic())
    return version


def caps_version(*, document: dict[str, Any], models: dict[str, ServedModel]) -> int:
    """A number that changes whenever what the caller sees changes (models, LoRAs, states, defaults)."""
    states = sorted((name, served.endpoint.state) for name, served in models.items())
    digest = hashlib.sha256(json.dumps([document, states], sort_keys=True).encode()).hexdigest()
    return int(digest[:12], 16)


def tokenizer_path(*, model: str) -> Path | None:
    """tokenizer.json of a catalogue model's weights on this machine, if they are here."""
    spec = model_get(model)
    if spec is None:
        return None
    return _tokenizer_path(spec.name, spec.weights)


@lru_cache(maxsize=64)
def _tokenizer_path(name: str, weights: str) -> Path | None:
    candidates = [settings.DATA_DIR / weights, settings.DATA_DIR / "models" / name]
    package = importlib.util.find_spec(weights) if weights.isidentifier() else None
    if package is not None and package.submodule_search_locations:
        candidates.append(Path(next(iter(package.submodule_search_locations))) / "model")
    for directory in candidates:
        if (directory / "tokenizer.json").is_file():
            return directory / "tokenizer.json"
    return None


@lru_cache(maxsize=16)
def _load_tokenizer(path: Path, mtime: float) -> Tokenizer:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def tokenizer_for(*, model: str) -> Tokenizer | None:
    path = tokenizer_path(model=model)
    if path is None:
        return None
    return _load_tokenizer(path, path.stat().st_mtime)


def token_count(*, model: str, text: str) -> int | None:
    """Tokens in TEXT under MODEL's tokenizer, or None when the weights are not on this machine."""
    tokenizer = tokenizer_for(model=model)
    if tokenizer is None:
        return None
    return len(tokenizer.encode(text, add_special_tokens=False).ids)
