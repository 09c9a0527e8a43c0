from __future__ import annotations

from pathlib import Path

import pytest

from accounts.models import AuditEntry, TeamPreference
from accounts.selectors import preferred_model
from accounts.services import team_preference_set, validate_completion_model
from finetune.selectors import LoraRef
from licensing.services import license_remove
from refact_site.exceptions import ApplicationError
from tests.accounts.conftest import COMPLETION_MODEL, OTHER_COMPLETION_MODEL

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "name, words",
    [
        ("", "required"),
        ("no-such-model", "Unknown model 'no-such-model'"),
        ("qwen2.5/coder/1.5b/instruct", "cannot do code completion"),
        ("all-minilm-l6-v2", "cannot do code completion"),
        (f"{COMPLETION_MODEL}:run", "base:run:checkpoint"),
        (f"{COMPLETION_MODEL}:run:", "base:run:checkpoint"),
        (f"{COMPLETION_MODEL}:bad run!:ckpt", "run name 'bad run!' is not valid"),
        ("nope:run1:ckpt", "Unknown model 'nope'"),
    ],
)
def test_invalid_models_are_refused_with_the_field(name, words):
    with pytest.raises(ApplicationError, match=words) as caught:
        validate_completion_model(name)
    assert caught.value.field == "completion_model"


def test_lora_names_are_checked_against_the_resolver(monkeypatch):
    assert validate_completion_model(f"{COMPLETION_MODEL}:run1:ckpt-10") == f"{COMPLETION_MODEL}:run1:ckpt-10"

    def resolve(*, base_model, run, checkpoint=None):
        return LoraRef(base_model="starcoder2/3b/base", run=run, checkpoint="ckpt-20", path=Path("/x"))

    monkeypatch.setattr("finetune.selectors.lora_resolve", resolve)
    with pytest.raises(ApplicationError, match="fine-tunes 'starcoder2/3b/base', not"):
        validate_completion_model(f"{COMPLETION_MODEL}:run1:best")
    assert validate_completion_model("starcoder2/3b/base:run1:best") == "starcoder2/3b/base:run1:ckpt-20"


def test_registered_models_count(tiny_model):
    assert validate_completion_model("tiny-test") == "tiny-test"


def test_preferred_model_per_team_and_project(admin_user, alice, bob, carol, team_a, project_a, project_b):
    assert preferred_model(user=alice) is None
    team_preference_set(team=team_a, completion_model=COMPLETION_MODEL, actor=admin_user)
    team_preference_set(team=team_a, project=project_a, completion_model=OTHER_COMPLETION_MODEL, actor=admin_user)
    assert preferred_model(user=alice) == COMPLETION_MODEL
    assert preferred_model(user=alice, project="shop") == OTHER_COMPLETION_MODEL
    assert preferred_model(user=alice, project="unknown") == COMPLETION_MODEL
    assert preferred_model(user=bob) is None and preferred_model(user=carol, project="shop") is None
    # Another team's project cannot carry this team's override.
    with pytest.raises(ApplicationError, match="Project not found"):
        team_preference_set(team=team_a, project=project_b, completion_model=COMPLETION_MODEL)
    # Bad input leaves the stored choice alone.
    with pytest.raises(ApplicationError):
        team_preference_set(team=team_a, completion_model="nope")
    assert preferred_model(user=alice) == COMPLETION_MODEL
    # Without a license the preference is off, and back on re-activation (kept meanwhile).
    license_remove(actor=admin_user)
    assert preferred_model(user=alice) is None and TeamPreference.objects.count() == 2
    from tests.support.licenses import activate_test_license

    activate_test_license()
    assert preferred_model(user=alice, project="shop") == OTHER_COMPLETION_MODEL
    # Clearing.
    assert team_preference_set(team=team_a, project=project_a, completion_model="", actor=admin_user) is None
    assert preferred_model(user=alice, project="shop") == COMPLETION_MODEL
    diffs = list(AuditEntry.objects.filter(action__startswith="team.preference").values_list("diff", flat=True))
    assert {"project": None, "completion_model": [None, COMPLETION_MODEL]} in diffs
    assert {"project": "shop", "completion_model": [OTHER_COMPLETION_MODEL, None]} in diffs


def test_preferences_version_changes_with_every_change(admin_user, alice, team_a):
    from accounts.selectors import team_preferences_version

    seen = {team_preferences_version()}
    team_preference_set(team=team_a, completion_model=COMPLETION_MODEL, actor=admin_user)
    seen.add(team_preferences_version())
    team_preference_set(team=team_a, completion_model=OTHER_COMPLETION_MODEL, actor=admin_user)
    seen.add(team_preferences_version())
    team_preference_set(team=team_a, completion_model="", actor=admin_user)
    seen.add(team_preferences_version())
    license_remove(actor=admin_user)
    seen.add(team_preferences_version())
    assert len(seen) == 5
