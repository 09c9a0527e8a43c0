from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from finetune.api import projects_visible
from finetune.models import FinetuneRun
from finetune.parameters import PARAMETERS, PARAMETERS_BY_NAME
from finetune.selectors import finetune_run_best_checkpoint, finetune_run_get, finetune_runs_visible
from finetune.services import finetune_run_cancel, finetune_run_create, finetune_run_delete, finetune_run_rename
from hosting.catalogue import FINETUNE
from hosting.selectors import model_catalogue
from refact_site.exceptions import ApplicationError, NotFoundError

GPU_CHOICES = range(8)


def finetunable_models() -> list:
    return [spec for spec in model_catalogue() if spec.supports(FINETUNE) and spec.fim is not None]


def run_or_404(request: HttpRequest, run_id: int) -> FinetuneRun:
    try:
        return finetune_run_get(user=request.user, run_id=run_id)
    except NotFoundError:
        raise Http404("no such run") from None


def posted_value(source, parameter):  # noqa: ANN001, ANN201
    if parameter.kind is bool:
        return parameter.name in source
    return source.get(parameter.name, parameter.default)


@login_required
def index(request: HttpRequest) -> HttpResponse:
    runs = finetune_runs_visible(user=request.user)
    return render(
        request,
        "finetune/index.html",
        {"runs": runs, "projects": projects_visible(request.user), "models": finetunable_models()},
    )


@login_required
def launch(request: HttpRequest) -> HttpResponse:
    """The launch dialog: name, options, GPUs and every Advanced setting with its default and range."""
    source = request.POST if request.method == "POST" else request.GET
    project = projects_visible(request.user).filter(pk=source.get("project") or 0).first()
    model = source.get("model", "")
    error = None
    if request.method == "POST" and project is not None:
        values = {
            p.name: source.get(p.name) if p.kind is not bool else (p.name in source)
            for p in PARAMETERS
            if p.kind is bool or source.get(p.name, "") != ""
        }
        try:
            run = finetune_run_create(
                project=project,
                base_model=model,
                name=source.get("name", ""),
                parameters=values,
                keep_smaller="keep_smaller" in source,
                gpus=[int(index) for index in source.getlist("gpus")],
                user=request.user,
            )
        except ApplicationError as failure:
            error = failure
        else:
            messages.success(request, f"Run {run.name} queued.")
            return redirect("finetune:run", run_id=run.pk)
    if project is None:
        messages.error(request, "Choose a project first.")
        return redirect("finetune:index")
    rows = [
        {"parameter": p, "value": posted_value(source, p) if request.method == "POST" else p.default}
        for p in PARAMETERS
        if p.name != "trainable_embeddings"
    ]
    return render(
        request,
        "finetune/launch.html",
        {
            "project": project,
            "model": model,
            "models": finetunable_models(),
            "rows": rows,
            "gpus": GPU_CHOICES,
            "selected_gpus": source.getlist("gpus"),
            "error": error,
            "form": source,
            "embeddings": PARAMETERS_BY_NAME["trainable_embeddings"],
        },
        status=400 if error else 200,
    )


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_or_404(request, run_id)
    return render(
        request,
        "finetune/run.html",
        {
            "run": run,
            "best": finetune_run_best_checkpoint(run=run),
            "parameters": [(p, run.parameters.get(p.name)) for p in PARAMETERS],
            "files": run.files.all(),
            "checkpoints": run.checkpoints.all(),
            "log_lines": run.log_lines.all(),
        },
    )


@login_required
@require_POST
def run_action(request: HttpRequest, run_id: int, action: str) -> HttpResponse:
    run = run_or_404(request, run_id)
    try:
        if action == "cancel":
            finetune_run_cancel(run=run, user=request.user)
            messages.success(request, f"Cancel requested for {run.name}; its checkpoints are kept.")
        elif action == "rename":
            finetune_run_rename(run=run, name=request.POST.get("name", ""), user=request.user)
            messages.success(request, f"Renamed to {run.name}.")
        elif action == "delete":
            name = run.name
            finetune_run_delete(run=run, user=request.user)
            messages.success(request, f"Run {name} deleted.")
            return redirect("finetune:index")
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("finetune:run", run_id=run_id)
