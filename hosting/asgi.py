"""The hot plugin endpoints (completions, chat, embeddings) served without the page middleware.

Sessions, CSRF, messages, static files and the clickjacking header mean nothing to an API-key
client, and several of those middlewares are synchronous: each would cost two thread hops per
request (and per streamed response) under daphne. These views authenticate, answer outages and set
their own headers themselves.
"""

from __future__ import annotations

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

HOT_PATHS = frozenset({"/v1/completions", "/v1/chat/completions", "/v1/embeddings"})


class PluginASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)


def with_plugin_fast_path(application):
    """ASGI app: the hot plugin paths to a middleware-free Django handler, everything else to APPLICATION."""
    plugin = PluginASGIHandler()

    async def dispatch(scope, receive, send):
        if scope["type"] == "http" and scope["path"] in HOT_PATHS:
            return await plugin(scope, receive, send)
        return await application(scope, receive, send)

    return dispatch
