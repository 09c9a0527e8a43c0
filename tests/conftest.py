from __future__ import annotations

import os
from collections.abc import Iterator

import dramatiq
import pytest
from django.conf import settings


@pytest.fixture(scope="session")
def backend() -> str:
    return os.environ["REFACT_TEST_BACKEND"]


@pytest.fixture(scope="session", autouse=True)
def _clean_redis_prefix() -> Iterator[None]:
    """Remove what an earlier run of this checkout left in Redis (only keys under its own prefix)."""

    def clean() -> None:
        if not settings.REDIS_URL:
            return
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(f"{settings.REDIS_PREFIX}*", count=1000):
            client.delete(key)
        client.close()

    clean()
    yield
    clean()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup) -> Iterator[None]:
    """pytest-django's, and then, before the test database is dropped, the usage writer's connection
    closed: that thread lives as long as the process (stats.buffer), and a connection it kept open
    stopped the database from being dropped ("being accessed by other users")."""
    yield
    from django.db import connections

    from stats.buffer import _writer

    _writer.submit(connections.close_all).result(timeout=10)


def _cache_clear() -> None:
    """Empty this checkout's cache only: Django's RedisCache.clear() would FLUSHDB every checkout's Redis data."""
    from django.core.cache import cache

    if not settings.REDIS_URL:
        cache.clear()
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{settings.CACHES['default']['KEY_PREFIX']}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def clean_cache() -> Iterator[None]:
    _cache_clear()
    yield
    _cache_clear()


@pytest.fixture
def broker() -> Iterator[dramatiq.Broker]:
    broker = dramatiq.get_broker()
    broker.flush_all()
    yield broker
    broker.flush_all()


@pytest.fixture
def worker(broker: dramatiq.Broker, transactional_db: None) -> Iterator[dramatiq.Worker]:
    """Real Dramatiq worker threads in this process, on the configured broker (Redis or stub)."""
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-password-1")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture(scope="session")
def tiny_model_weights() -> str:
    """The tiny model's files, built once per test session under the data directory."""
    from pathlib import Path

    from gpu_worker.tiny_model import build_tiny_model

    relative = Path("models") / "tiny-test"
    target = settings.DATA_DIR / relative
    if not (target / "config.json").exists():
        build_tiny_model(target)
    return str(relative)


@pytest.fixture
def tiny_model(db, tiny_model_weights):
    """The tiny model registered in the catalogue as `tiny-test` (CPU-capable, fine-tunable)."""
    from pathlib import Path

    from hosting.services import tiny_model_register

    return tiny_model_register(name="tiny-test", weights=Path(tiny_model_weights), parameters=0)


# --- personas (accounts): admin, Alice in team A, Bob in team B, Carol with no team ---


@pytest.fixture
def enterprise_license(db):
    """An active Enterprise license, so that non-admin users' keys work (the Self-hosted edition refuses them)."""
    from tests.support.licenses import activate_test_license

    return activate_test_license()


@pytest.fixture
def team_a(db):
    from accounts.models import Team

    return Team.objects.create(name="team-a")


@pytest.fixture
def team_b(db):
    from accounts.models import Team

    return Team.objects.create(name="team-b")


@pytest.fixture
def alice(django_user_model, team_a, enterprise_license):
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-password-1", team=team_a)


@pytest.fixture
def bob(django_user_model, team_b, enterprise_license):
    return django_user_model.objects.create_user("bob", "bob@example.com", "bob-password-1", team=team_b)


@pytest.fixture
def carol(django_user_model, enterprise_license):
    return django_user_model.objects.create_user("carol", "carol@example.com", "carol-password-1")


@pytest.fixture
def api_key_for(db):
    """api_key_for(user, name="default") -> the plaintext of a new key for USER."""
    from accounts.services import api_key_create

    def make(user, name: str = "default") -> str:
        return api_key_create(user=user, name=name)[1]

    return make


@pytest.fixture(autouse=True)
def _usage_rows_stay_in_their_test() -> Iterator[None]:
    """Usage rows still queued when a test ends belong to its rolled-back database: dropped, so that
    neither a later test nor the exit hook writes them."""
    from stats import buffer

    yield
    buffer._take()


@pytest.fixture(autouse=True)
def _kept_api_keys_stay_in_their_test() -> Iterator[None]:
    """Keys and licenses the plugin API kept in memory belong to the test's rolled-back database."""
    from accounts import authcache

    yield
    authcache.forget()
