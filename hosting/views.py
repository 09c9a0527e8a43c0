"""The Model Hosting page and the Integrations section of Settings: thin views over hosting.services."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from hosting import selectors, services
from hosting.services import OPENAI_MODELS
from refact_site.exceptions import ApplicationError


def _lora_choices(model: str) -> list[str]:
    """`run:checkpoint` of every checkpoint of the model's completed runs, newest run first."""
    from finetune.selectors import lora_list

    return [f"{ref.run}:{ref.checkpoint}" for ref in lora_list(base_model=model)]


@login_required
def index(request: HttpRequest) -> HttpResponse:
    assignments = [selectors.assignment_view(assignment=a) for a in selectors.assignment_list()]
    for view in assignments:
        view["lora_choices"] = _lora_choices(view["model"])
    context = {
        "nodes": selectors.node_views(),
        "assignments": assignments,
        "catalogue": selectors.catalogue_views(),
        "openai": selectors.openai_integration(),
        "openai_models": OPENAI_MODELS,
        "openai_warning": selectors.OPENAI_WARNING,
        "server_address": request.build_absolute_uri("/").rstrip("/"),
        "is_admin": request.user.is_staff,
    }
    return render(request, "hosting/index.html", context)


def _admin_action(view: Callable[[HttpRequest], str]) -> Callable:
    """POST-only, admins only; a refusal becomes an error message on the page, never a half-done change."""

    @wraps(view)
    @login_required
    @require_POST
    def wrapper(request: HttpRequest) -> HttpResponse:
        if not request.user.is_staff:
            messages.error(request, "Only an administrator can change model hosting.")
            return redirect("hosting:index")
        try:
            done = view(request)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, done)
        target = request.POST.get("next", "")
        # Only a path on this site: never an open redirect.
        return redirect(target if target.startswith("/") and not target.startswith("//") else "hosting:index")

    return wrapper


def _int(request: HttpRequest, name: str) -> int | None:
    value = request.POST.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ApplicationError(f"{name} must be a whole number", field=name) from None


@_admin_action
def assign(request: HttpRequest) -> str:
    assignment = services.model_assign(
        actor=request.user,
        model=request.POST.get("model", ""),
        backend=request.POST.get("backend") or None,
        gpus=_int(request, "gpus"),
        share_gpu=request.POST.get("share_gpu") == "on",
        n_ctx=_int(request, "n_ctx"),
        concurrency=_int(request, "concurrency"),
    )
    return f"{assignment.model} assigned to {assignment.node} ({', '.join(assignment.devices)})."


@_admin_action
def unassign(request: HttpRequest) -> str:
    model = request.POST.get("model", "")
    services.model_unassign(actor=request.user, model=model)
    return f"{model} is no longer hosted."


@_admin_action
def lora(request: HttpRequest) -> str:
    model = request.POST.get("model", "")
    mode = request.POST.get("mode", "")
    run, checkpoint = request.POST.get("run", "").strip(), request.POST.get("checkpoint", "").strip()
    if mode == "specific" and request.POST.get("choice"):
        run, _, checkpoint = request.POST["choice"].partition(":")
    services.lora_activate(actor=request.user, model=model, mode=mode, run=run or None, checkpoint=checkpoint or None)
    return f"LoRA selection of {model} saved." if mode != "off" else f"{model} serves the base model only."


@_admin_action
def lora_remove(request: HttpRequest) -> str:
    model = request.POST.get("model", "")
    services.lora_deactivate(actor=request.user, model=model, selection_id=_int(request, "selection") or 0)
    return f"LoRA removed from {model}."


@_admin_action
def openai(request: HttpRequest) -> str:
    key = request.POST.get("api_key", "")
    services.integration_openai_save(
        actor=request.user,
        enabled=request.POST.get("enabled") == "on",
        api_key=None if not key and request.POST.get("remove_key") != "on" else key,
        models=request.POST.getlist("models"),
    )
    return "OpenAI integration saved."


def integrations_section(request: HttpRequest) -> str:
    context = {
        "openai": selectors.openai_integration(),
        "openai_models": OPENAI_MODELS,
        "openai_warning": selectors.OPENAI_WARNING,
        "is_admin": request.user.is_staff,
        "next": "/settings/",
    }
    return render_to_string("hosting/integrations_section.html", context, request=request)
