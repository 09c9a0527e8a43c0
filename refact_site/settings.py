"""One settings module, read from the environment.

Production: DATABASE_URL (PostgreSQL) and REDIS_URL set. Embedded default (neither set): SQLite in the
data directory, in-memory channel layer, local-memory cache and a stub broker drained by a worker
inside the server process, so that one command starts the whole product on a bare machine.
"""

from __future__ import annotations

from pathlib import Path

from csp.constants import NONE, SELF, UNSAFE_INLINE

from refact_site.config import (
    ConfigError,
    data_dir_secret,
    env_bool,
    env_database,
    env_int,
    env_list,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# All persistent files live here: database (embedded), uploads, clones, weights, adapters, logs.
DATA_DIR = Path(env_str("REFACT_DATA_DIR", "./data")).expanduser().resolve()
try:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
except OSError as error:
    raise ConfigError(f"REFACT_DATA_DIR: cannot create {str(DATA_DIR)!r}: {error.strerror}") from None

DEBUG = env_bool("DEBUG", False)
# Never a hard-coded default: generated once and kept in the data directory.
SECRET_KEY = env_str("SECRET_KEY") or data_dir_secret(DATA_DIR, "secret_key")
if len(SECRET_KEY) < 32:
    raise ConfigError("SECRET_KEY: must be at least 32 characters long")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for origin in CSRF_TRUSTED_ORIGINS:
    if not origin.startswith(("http://", "https://")):
        raise ConfigError(f"CSRF_TRUSTED_ORIGINS: {origin!r} must start with http:// or https://")

ENTERPRISE_ADMIN_TOKEN = env_str("ENTERPRISE_ADMIN_TOKEN")
REFACT_ADMIN_USERNAME = env_str("REFACT_ADMIN_USERNAME", "admin")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "django_dramatiq",
    "refact_site",
    "accounts",
    "licensing",
    "projects",
    "finetune",
    "hosting",
    "stats",
    "gpu_worker",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "refact_site.middleware.ServiceUnavailableMiddleware",
    "refact_site.middleware.NulCharacterMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "refact_site.urls"
ASGI_APPLICATION = "refact_site.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "refact_site.context_processors.navigation",
                "licensing.context_processors.license_warning",
            ],
        },
    },
]

DATABASES = {"default": env_database("DATABASE_URL", DATA_DIR / "db.sqlite3")}
# Without Redis, the processes on this machine learn of key, user and license changes here (accounts.authcache).
AUTH_GENERATION_FILE = DATA_DIR / "auth.generation"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: Dramatiq broker, channel layer, cache and rate limits. Unset: the embedded default.
REDIS_URL = env_url("REDIS_URL", {"redis", "rediss", "unix"})
# Several deployments may share one Redis: every key this server writes starts with this prefix.
REDIS_PREFIX = env_str("REFACT_REDIS_PREFIX", "refact")
# The Dramatiq broker: REDIS_URL by default; RabbitMQ (amqp://) may be named instead.
BROKER_URL = env_url("REFACT_BROKER_URL", {"redis", "rediss", "amqp", "amqps"}) or REDIS_URL

# Longer than channels-redis' blocking receive (5 s), short enough to notice a dead connection.
CHANNEL_LAYER_SOCKET_TIMEOUT = 15

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s that channels-redis
                # blocks in BZPOPMIN: every idle socket's receive then died with "Timeout reading".
                "hosts": [
                    {"address": REDIS_URL, "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT, "socket_connect_timeout": 2}
                ],
                "prefix": f"{REDIS_PREFIX}:channels",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

DRAMATIQ_MIDDLEWARE = [
    "dramatiq.middleware.AgeLimit",
    "dramatiq.middleware.TimeLimit",
    "dramatiq.middleware.ShutdownNotifications",
    "dramatiq.middleware.Callbacks",
    "dramatiq.middleware.Pipelines",
    "dramatiq.middleware.Retries",
    "dramatiq.middleware.CurrentMessage",
    "django_dramatiq.middleware.DbConnectionsMiddleware",
]
if BROKER_URL.startswith(("amqp://", "amqps://")):
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
        "OPTIONS": {"url": BROKER_URL},
        "MIDDLEWARE": DRAMATIQ_MIDDLEWARE,
    }
elif BROKER_URL:
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.redis.RedisBroker",
        "OPTIONS": {"url": BROKER_URL, "namespace": f"{REDIS_PREFIX}:dramatiq"},
        "MIDDLEWARE": DRAMATIQ_MIDDLEWARE,
    }
else:
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.stub.StubBroker",
        "OPTIONS": {},
        "MIDDLEWARE": DRAMATIQ_MIDDLEWARE,
    }
# With no shared broker the messages live in this process, so this process must drain them.
REFACT_INPROCESS_WORKER = env_bool("REFACT_INPROCESS_WORKER", not BROKER_URL)
REFACT_WORKER_THREADS = env_int("REFACT_WORKER_THREADS", 4, minimum=1, maximum=64)
REFACT_WORKER_NAME = env_str("REFACT_WORKER_NAME")
# A worker whose heartbeat is older than this is considered gone; its running jobs are re-queued.
REFACT_WORKER_STALE_SECONDS = env_int("REFACT_WORKER_STALE_SECONDS", 60, minimum=5)
# Test/benchmark only: without selected GPUs, train data-parallel over this many CPU processes (gloo).
REFACT_FINETUNE_CPU_WORLD_SIZE = env_int("REFACT_FINETUNE_CPU_WORLD_SIZE", 1, minimum=1, maximum=16)

REST_FRAMEWORK = {
    # API key first: its "Bearer" challenge makes unauthenticated requests 401 (not 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "refact_site.exceptions.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bodies only; upload endpoints opt into multipart themselves.
    "DEFAULT_PARSER_CLASSES": ["refact_site.parsers.JSONParser"],
    # OPTIONS introspection is not part of our API (and DRF's would call get_object on list views).
    "DEFAULT_METADATA_CLASS": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Refact server API",
    "DESCRIPTION": "Administration REST API and the plugin API of the self-hosted code assistant.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "refact_site.schema.add_error_responses",
    ],
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
try:  # whitenoise warns about a missing STATIC_ROOT in a checkout that was never collected
    STATIC_ROOT.mkdir(exist_ok=True)
except OSError:
    pass
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "refact_site.storage.StaticStorage"},
}
# Served by the app itself (no extra web server); finders cover a checkout without collectstatic.
WHITENOISE_USE_FINDERS = True

# Security. Behind a TLS-terminating reverse proxy set REFACT_HTTPS=true (production).
REFACT_HTTPS = env_bool("REFACT_HTTPS", False)
REFACT_TRUST_PROXY_HEADERS = env_bool("REFACT_TRUST_PROXY_HEADERS", False)
if REFACT_TRUST_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = REFACT_HTTPS
CSRF_COOKIE_SECURE = REFACT_HTTPS
SECURE_SSL_REDIRECT = REFACT_HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if REFACT_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = REFACT_HTTPS
# The header only states the intent; nothing is submitted to a preload list by this server.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", REFACT_HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Pages run only our own static scripts: no inline script, no third-party origin. Inline style attributes stay
# allowed (the admin and progress bars use them); they cannot run code. 'self' covers same-host websockets.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ConfigError(f"LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "dramatiq": {"level": "WARNING"},
        "pika": {"level": "WARNING"},
    },
}

# --- accounts ---
# Keyed hash of API key secrets: generated once and kept in the data directory, like SECRET_KEY.
REFACT_API_KEY_PEPPER = env_str("REFACT_API_KEY_PEPPER") or data_dir_secret(DATA_DIR, "api_key_pepper")
if len(REFACT_API_KEY_PEPPER) < 32:
    raise ConfigError("REFACT_API_KEY_PEPPER: must be at least 32 characters long")
# Failed API-key attempts allowed per client address and per key id within the window (Django cache).
REFACT_AUTH_FAILURE_LIMIT = env_int("REFACT_AUTH_FAILURE_LIMIT", 20, minimum=1)
REFACT_AUTH_FAILURE_WINDOW = env_int("REFACT_AUTH_FAILURE_WINDOW", 300, minimum=1)

# --- licensing ---
# Trusted vendor keys `kid:base64-of-raw-32-byte-Ed25519-key`, comma-separated; default: the product key.
from licensing.tokens import PRODUCT_PUBLIC_KEYS, parse_public_keys  # noqa: E402

REFACT_LICENSE_PUBLIC_KEYS = env_str("REFACT_LICENSE_PUBLIC_KEYS", PRODUCT_PUBLIC_KEYS)
try:
    if not parse_public_keys(REFACT_LICENSE_PUBLIC_KEYS):
        raise ValueError("no key listed")
except ValueError as error:
    raise ConfigError(f"REFACT_LICENSE_PUBLIC_KEYS: {error}") from None
# Admins are warned this many days before the license expires.
REFACT_LICENSE_WARNING_DAYS = env_int("REFACT_LICENSE_WARNING_DAYS", 14, minimum=0, maximum=365)

# --- projects ---
# Hostile input crosses one guarded door each; these are the doors' limits.
REFACT_UPLOAD_MAX_MB = env_int("REFACT_UPLOAD_MAX_MB", 1024, minimum=1)
# Any other request body (JSON of the APIs, forms); a prompt may be 4,000,000 characters. Over it: 413.
REFACT_REQUEST_MAX_MB = env_int("REFACT_REQUEST_MAX_MB", 32, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = REFACT_REQUEST_MAX_MB * 1024 * 1024
REFACT_DOWNLOAD_MAX_MB = env_int("REFACT_DOWNLOAD_MAX_MB", 1024, minimum=1)
REFACT_DOWNLOAD_TIMEOUT_SECONDS = env_int("REFACT_DOWNLOAD_TIMEOUT_SECONDS", 300, minimum=1)
# Off in production: a link could otherwise reach services inside the network (SSRF).
REFACT_DOWNLOAD_ALLOW_PRIVATE = env_bool("REFACT_DOWNLOAD_ALLOW_PRIVATE", False)
REFACT_GIT_TIMEOUT_SECONDS = env_int("REFACT_GIT_TIMEOUT_SECONDS", 600, minimum=1)
REFACT_GIT_MAX_MB = env_int("REFACT_GIT_MAX_MB", 2048, minimum=1)
# Local paths and file:// remotes read the server's own disk; only tests turn this on.
REFACT_GIT_ALLOW_LOCAL = env_bool("REFACT_GIT_ALLOW_LOCAL", False)
# Off in production: a git remote could otherwise reach services inside the network (SSRF), like a link.
REFACT_GIT_ALLOW_PRIVATE = env_bool("REFACT_GIT_ALLOW_PRIVATE", False)
REFACT_ARCHIVE_MAX_MEMBERS = env_int("REFACT_ARCHIVE_MAX_MEMBERS", 200_000, minimum=1)
REFACT_ARCHIVE_MAX_MB = env_int("REFACT_ARCHIVE_MAX_MB", 8192, minimum=1)
REFACT_ARCHIVE_MAX_RATIO = env_int("REFACT_ARCHIVE_MAX_RATIO", 200, minimum=1)
# Processes that read and classify files during a scan of a big tree (0: one per CPU core).
REFACT_SCAN_PROCESSES = env_int("REFACT_SCAN_PROCESSES", 0, minimum=0, maximum=64)


# --- hosting ---
# The inference supervisor of each worker (in-process in the embedded default) serves assigned models.
REFACT_SUPERVISOR = env_bool("REFACT_SUPERVISOR", True)
# torch CPU threads of each transformers inference server (0: torch's default).
REFACT_INFERENCE_THREADS = env_int("REFACT_INFERENCE_THREADS", 0, minimum=0, maximum=256)


# --- plugin API (hosting.plugin_api) ---
# Inference servers to proxy to besides those the supervisor reports: `MODEL=URL` (a LoRA as
# `base:run:checkpoint=URL`), comma-separated; e.g. an OpenAI-protocol server run by hand.
REFACT_INFERENCE_SERVERS = env_list("REFACT_INFERENCE_SERVERS", [])
for _entry in REFACT_INFERENCE_SERVERS:
    _name, _, _url = _entry.partition("=")
    if not _name or not _url.startswith(("http://", "https://")):
        raise ConfigError(f"REFACT_INFERENCE_SERVERS: expected MODEL=http://HOST:PORT, got {_entry!r}")
# Requests per API key per window (seconds), and requests of one key in flight at once; over either: 429.
REFACT_PLUGIN_RATE_LIMIT = env_int("REFACT_PLUGIN_RATE_LIMIT", 600, minimum=1)
REFACT_PLUGIN_RATE_WINDOW = env_int("REFACT_PLUGIN_RATE_WINDOW", 60, minimum=1, maximum=3600)
REFACT_PLUGIN_MAX_INFLIGHT = env_int("REFACT_PLUGIN_MAX_INFLIGHT", 16, minimum=1)
# A request in flight holds a lease renewed while it runs; a dead web process's slots free up after it.
REFACT_PLUGIN_SLOT_LEASE_SECONDS = env_int("REFACT_PLUGIN_SLOT_LEASE_SECONDS", 60, minimum=3, maximum=3600)
# Seconds to connect to an inference server, and to wait for its next bytes, before answering 503.
REFACT_UPSTREAM_CONNECT_TIMEOUT = env_int("REFACT_UPSTREAM_CONNECT_TIMEOUT", 3, minimum=1, maximum=60)
REFACT_UPSTREAM_READ_TIMEOUT = env_int("REFACT_UPSTREAM_READ_TIMEOUT", 120, minimum=1, maximum=3600)
