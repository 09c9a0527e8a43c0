from __future__ import annotations

import pytest

from finetune.models import FinetuneRun
from finetune.parameters import automatic_train_steps, parameters_defaults, parameters_parse, robust_step_seconds
from finetune.services import finetune_run_create
from refact_site.exceptions import ApplicationError


def test_defaults_match_the_design():
    assert parameters_defaults() == {
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.01,
        "lora_init_scale": 0.01,
        "lr": 3e-4,
        "batch_size": 128,
        "warmup_num_steps": 20,
        "weight_decay": 0.1,
        "train_steps": 0,
        "lr_decay_steps": 0,
        "low_gpu_mem_mode": True,
        "trainable_embeddings": False,
        "filter_loss_threshold": 3.0,
        "model_ctx_size": 0,
    }


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"lora_r": 5}, "lora_r", "one of 4, 8, 16, 32, 64"),
        ({"lora_alpha": 2}, "lora_alpha", "from 4 to 128"),
        ({"lora_dropout": 0.6}, "lora_dropout", "from 0 to 0.5"),
        ({"lr": 1}, "lr", "from 1e-05 to 0.003"),
        ({"batch_size": 2}, "batch_size", "from 4 to 1024"),
        ({"batch_size": 4.5}, "batch_size", "from 4 to 1024"),
        ({"batch_size": "many"}, "batch_size", "from 4 to 1024"),
        ({"warmup_num_steps": 0}, "warmup_num_steps", "from 1 to 100"),
        ({"weight_decay": 2}, "weight_decay", "from 0 to 1"),
        ({"train_steps": 5001}, "train_steps", "from 0 to 5000"),
        ({"lr_decay_steps": -1}, "lr_decay_steps", "from 0 to 5000"),
        ({"low_gpu_mem_mode": "maybe"}, "low_gpu_mem_mode", "true or false"),
        ({"trainable_embeddings": 3}, "trainable_embeddings", "true or false"),
        ({"filter_loss_threshold": "nan"}, "filter_loss_threshold", "from 0 to 100"),
        ({"model_ctx_size": 10}, "model_ctx_size", "at least 64"),
        ({"learning_rate": 1e-4}, "learning_rate", "unknown parameter"),
    ],
)
def test_each_parameter_is_checked_by_name(values, field, message):
    with pytest.raises(ApplicationError) as caught:
        parameters_parse(values)
    assert caught.value.field == field
    assert field in caught.value.message and message in caught.value.message


def test_values_from_the_command_line_are_parsed():
    parsed = parameters_parse({"lora_r": "32", "lr": "1e-4", "low_gpu_mem_mode": "off", "batch_size": "64"})
    assert (parsed["lora_r"], parsed["lr"], parsed["low_gpu_mem_mode"], parsed["batch_size"]) == (32, 1e-4, False, 64)


def test_automatic_steps_follow_the_epoch_table():
    assert automatic_train_steps(packed_samples=10, batch_size=128) == 50
    assert automatic_train_steps(packed_samples=500, batch_size=128) == 200  # 50 epochs: 195.3 -> 200
    assert automatic_train_steps(packed_samples=4000, batch_size=128) == 1100  # 35 epochs: 1093.75
    assert automatic_train_steps(packed_samples=40000, batch_size=128) == 950  # 3 epochs: 937.5


def test_eta_ignores_outlier_steps():
    assert robust_step_seconds([1.0] * 10 + [30.0, 0.01]) == pytest.approx(1.0)
    assert robust_step_seconds([]) is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "has space"}, "name"),
        ({"name": "x" * 31}, "name"),
        ({"name": ""}, "name"),
        ({"base_model": "no-such-model"}, "model"),
        ({"base_model": "all-minilm-l6-v2"}, "model"),
        ({"base_model": "qwen2.5/coder/7b/base"}, "gpus"),
        ({"gpus": "0;1"}, "gpus"),
        ({"gpus": "99"}, "gpus"),
        ({"parameters": {"lora_r": 7}}, "lora_r"),
    ],
)
def test_start_refuses_bad_input_and_writes_nothing(tiny_model, training_files, project, kwargs, field):
    arguments = {"project": project, "base_model": "tiny-test", "name": "ok-run", **kwargs}
    with pytest.raises(ApplicationError) as caught:
        finetune_run_create(**arguments)
    assert caught.value.field == field
    assert not FinetuneRun.objects.exists()


def test_duplicate_name_is_refused(tiny_model, training_files, project):
    finetune_run_create(project=project, base_model="tiny-test", name="same")
    with pytest.raises(ApplicationError, match="already exists") as caught:
        finetune_run_create(project=project, base_model="tiny-test", name="same")
    assert caught.value.field == "name"


def test_too_few_files_is_refused_before_any_work(tiny_model, training_files, project):
    del training_files[1:]
    with pytest.raises(ApplicationError, match="too few files") as caught:
        finetune_run_create(project=project, base_model="tiny-test", name="few")
    assert caught.value.field == "project"
