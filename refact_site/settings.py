"""One settings module, read from the environment.

Production: DATABASE_URL (PostgreSQL) and REDIS_URL set. Embedded default (neither set): SQLite in the
data directory, in-memory channel layer, local-memory cache and a stub broker drained by a worker
inside the server process, so that one command starts the whole product on a bare machine.
"""

from __future__ import annotations

from pathlib import Path

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
    "gpu_worker",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "refact_site.middleware.ServiceUnavailableMiddleware",
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
            ],
        },
    },
]

DATABASES = {"default": env_database("DATABASE_URL", DATA_DIR / "db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: Dramatiq broker, channel layer, cache and rate limits. Unset: the embedded default.
REDIS_URL = env_url("REDIS_URL", {"redis", "rediss", "unix"})
# Several deployments may share one Redis: every key this server writes starts with this prefix.
REDIS_PREFIX = env_str("REFACT_REDIS_PREFIX", "refact")
# The Dramatiq broker: REDIS_URL by default; RabbitMQ (amqp://) may be named instead.
BROKER_URL = env_url("REFACT_BROKER_URL", {"redis", "rediss", "amqp", "amqps"}) or REDIS_URL

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
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_PREFIX}:channels"},
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

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "refact_site.exceptions.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Refact server API",
    "DESCRIPTION": "Administration REST API and the plugin API of the self-hosted code assistant.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
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
