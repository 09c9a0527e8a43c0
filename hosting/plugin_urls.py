"""The plugin API at the paths Refact plugins and OpenAI clients expect (DESIGN.md, Plugin API)."""

from __future__ import annotations

from django.urls import path

from hosting import plugin_api

urlpatterns = [
    path("refact-caps", plugin_api.CapsView.as_view(), name="plugin-caps"),
    path("coding_assistant_caps.json", plugin_api.LegacyCapsView.as_view(), name="plugin-caps-legacy"),
    path("v1/login", plugin_api.LoginView.as_view(), name="plugin-login"),
    path("v1/models", plugin_api.ModelsView.as_view(), name="plugin-models"),
    path("v1/completions", plugin_api.completions, name="plugin-completions"),
    path("v1/chat/completions", plugin_api.chat_completions, name="plugin-chat-completions"),
    path("v1/embeddings", plugin_api.embeddings, name="plugin-embeddings"),
    path("tokenizer/<path:model>", plugin_api.TokenizerView.as_view(), name="plugin-tokenizer"),
]
