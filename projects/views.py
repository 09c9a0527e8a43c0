"""Pages for Projects and Sources: thin, calling the same services as the API and manage.py."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from accounts.selectors import is_admin
from projects import selectors, services
from projects.models import REASONS, Source
from projects.scanning import scan_state
from projects.uploads import TooLarge, check_upload_size, limited_upload_handlers
from refact_site.exceptions import ApplicationError, NotFoundError
from refact_site.text import count_noun

FILES_PER_PAGE = 100


def _project_or_404(request: HttpRequest, project_id: int):
    from django.http import Http404

    try:
        return selectors.project_get(user=request.user, project_id=project_id)
    except NotFoundError:
        raise Http404("No such project") from None


def _owner_team(request: HttpRequest):
    # Admins own their projects (Self-hosted: no team); everyone else works in their team.
    return None if is_admin(request.user) else request.user.team


def _back(request: HttpRequest, project_id: int, anchor: str = "") -> HttpResponseRedirect:
    return redirect(reverse("projects:detail", args=[project_id]) + (f"#{anchor}" if anchor else ""))


@login_required
def index(request: HttpRequest) -> HttpResponse:
    projects = list(selectors.project_list(user=request.user))
    if projects and "all" not in request.GET:
        return redirect("projects:detail", projects[0].pk)
    return render(request, "projects/index.html", {"projects": projects})


@login_required
@require_POST
def project_new(request: HttpRequest) -> HttpResponse:
    try:
        project = services.project_create(
            name=request.POST.get("name", ""), team=_owner_team(request), actor=request.user
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect(reverse("projects:index") + "?all")
    messages.success(request, f"Project {project.name} created. Add its sources below.")
    return redirect("projects:detail", project.pk)


@login_required
def detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_or_404(request, project_id)
    scan = selectors.current_scan(project=project)
    latest = selectors.latest_scan(project=project)
    context: dict[str, Any] = {
        "project": project,
        "projects": selectors.project_list(user=request.user),
        "sources": project.sources.select_related("ssh_key"),
        "ssh_keys": selectors.ssh_key_list(user=request.user).filter(team=project.team),
        "scan": scan,
        "scan_state": scan_state(scan) if scan else None,
        "latest": latest,
        "types": selectors.file_type_counts(project=project),
        "reasons": [
            (reason, (latest.summary.get("rejected", {}) if latest else {}).get(reason, 0)) for reason in REASONS
        ],
        "finetune_url": f"/finetune/?project={project.pk}",
    }
    return render(request, "projects/detail.html", context)


@login_required
@require_POST
def project_rename(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_or_404(request, project_id)
    try:
        services.project_rename(project=project, name=request.POST.get("name", ""), actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    return _back(request, project.pk)


@login_required
@require_POST
def project_delete(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_or_404(request, project_id)
    name = project.name
    services.project_delete(project=project, actor=request.user)
    messages.success(request, f"Project {name} and its files were deleted.")
    return redirect(reverse("projects:index") + "?all")


@login_required
@require_POST
def source_add(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_or_404(request, project_id)
    kind = request.POST.get("kind")
    try:
        if kind == "git":
            key = None
            if request.POST.get("ssh_key"):
                key = selectors.ssh_key_get(user=request.user, key_id=request.POST["ssh_key"])
            source = services.source_add_git(
                project=project,
                url=request.POST.get("url", ""),
                branch=request.POST.get("branch", ""),
                ssh_key=key,
                actor=request.user,
            )
        elif kind == "link":
            source = services.source_add_link(project=project, url=request.POST.get("url", ""), actor=request.user)
        else:
            raise ApplicationError("kind: choose a git repository or a link", field="kind")
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Source {source.name} added. Run 'git pull', scan files to read it.")
    return _back(request, project.pk, "sources")


@csrf_exempt  # CSRF is checked below, once the size-limited upload handlers are in place
@login_required
@require_POST
def source_upload(request: HttpRequest, project_id: int) -> HttpResponse:
    # Handlers first: nothing of the body is read before the size checks are in place.
    request.upload_handlers = limited_upload_handlers(request)
    project = _project_or_404(request, project_id)
    try:
        check_upload_size(request)
        # The CSRF check reads the body: the byte counter may stop it there as well.
        return _source_upload(request, project)
    except TooLarge as error:
        return _upload_refused(request, project, error)


def _upload_refused(request: HttpRequest, project: Any, error: TooLarge) -> HttpResponse:
    context = {"project": project, "message": error.message}
    return render(request, "projects/upload_refused.html", context, status=413)


@csrf_protect
def _source_upload(request: HttpRequest, project: Any) -> HttpResponse:
    try:
        upload = request.FILES.get("file")
        if upload is None:
            raise ApplicationError("file: choose a file to upload", field="file")
        source = services.source_add_upload(
            project=project,
            file_name=upload.name,
            stream=upload,
            is_test=request.POST.get("is_test") == "on",
            actor=request.user,
        )
    except TooLarge as error:
        return _upload_refused(request, project, error)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{source.name} uploaded.")
    return _back(request, project.pk, "sources")


def _source_or_404(request: HttpRequest, source_id: int) -> Source:
    from django.http import Http404

    try:
        return selectors.source_get(user=request.user, source_id=source_id)
    except NotFoundError:
        raise Http404("No such source") from None


@login_required
@require_POST
def source_delete(request: HttpRequest, source_id: int) -> HttpResponse:
    source = _source_or_404(request, source_id)
    project_id = source.project_id
    services.source_delete(source=source, actor=request.user)
    messages.success(request, f"Source {source.name} removed.")
    return _back(request, project_id, "sources")


@login_required
@require_POST
def source_test(request: HttpRequest, source_id: int) -> HttpResponse:
    source = _source_or_404(request, source_id)
    try:
        services.source_set_test(source=source, is_test=request.POST.get("is_test") == "on", actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    return _back(request, source.project_id, "sources")


@login_required
@require_POST
def scan_start(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_or_404(request, project_id)
    try:
        services.project_scan_start(project=project, actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    return _back(request, project.pk, "scan")


@login_required
@require_POST
def filter_save(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_or_404(request, project_id)
    try:
        changed = services.project_filter_update(
            project=project,
            type_selection=request.POST.getlist("type"),
            include_masks=request.POST.get("include_masks", ""),
            exclude_masks=request.POST.get("exclude_masks", ""),
            actor=request.user,
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"File Type Filter saved; {count_noun(changed, 'file')} changed state.")
    return _back(request, project.pk, "filter")


@login_required
def files(request: HttpRequest, project_id: int) -> HttpResponse:
    """The Full list: accepted and rejected files with their reasons."""
    project = _project_or_404(request, project_id)
    reason = request.GET.get("reason") or None
    file_type = request.GET.get("type")
    rows = selectors.scanned_files(
        project=project,
        reason="" if reason == "accepted" else reason if reason in REASONS else None,
        file_type=file_type if file_type is not None and "type" in request.GET and file_type != "*" else None,
    )
    page = Paginator(rows, FILES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "projects/files.html",
        {
            "project": project,
            "page": page,
            "reasons": REASONS,
            "reason": reason or "",
            "types": selectors.file_type_counts(project=project),
            "file_type": file_type if file_type is not None else "*",
            "query": query.urlencode(),
            "download_query": request.GET.urlencode(),
        },
    )


# --- Settings: SSH keys ---------------------------------------------------------------------


def ssh_keys_section(request: HttpRequest) -> str:
    keys = selectors.ssh_key_list(user=request.user)
    return render_to_string("projects/ssh_keys_section.html", {"keys": keys}, request=request)


@login_required
@require_POST
def ssh_key_create(request: HttpRequest) -> HttpResponse:
    try:
        key = services.ssh_key_create(name=request.POST.get("name", ""), team=_owner_team(request), actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"SSH key {key.name} created: add its public key to the repository's deploy keys.")
    return redirect(reverse("settings") + "#ssh-keys")


@login_required
@require_POST
def ssh_key_delete(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        key = selectors.ssh_key_get(user=request.user, key_id=key_id)
        services.ssh_key_delete(key=key, actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"SSH key {key.name} deleted.")
    return redirect(reverse("settings") + "#ssh-keys")
