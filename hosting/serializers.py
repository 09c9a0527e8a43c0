from __future__ import annotations

from rest_framework import serializers

from hosting.services import OPENAI_MODELS


class DeviceSerializer(serializers.Serializer):
    id = serializers.CharField()
    kind = serializers.CharField()
    name = serializers.CharField()
    memory_total_mb = serializers.IntegerField()
    memory_free_mb = serializers.IntegerField()
    models = serializers.ListField(child=serializers.CharField(), help_text="Hosted models placed on it.")


class NodeSerializer(serializers.Serializer):
    name = serializers.CharField()
    hostname = serializers.CharField()
    embedded = serializers.BooleanField()
    alive = serializers.BooleanField()
    heartbeat_at = serializers.DateTimeField()
    backends = serializers.ListField(child=serializers.CharField())
    devices = DeviceSerializer(many=True)


class CatalogueModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    family = serializers.CharField()
    description = serializers.CharField()
    n_ctx = serializers.IntegerField()
    required_memory_mb = serializers.IntegerField()
    capabilities = serializers.ListField(child=serializers.CharField())
    backends = serializers.ListField(child=serializers.CharField())
    max_shards = serializers.IntegerField()
    cpu_capable = serializers.BooleanField()
    hosted = serializers.BooleanField()


class LoraSelectionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    mode = serializers.CharField()
    run = serializers.CharField()
    checkpoint = serializers.CharField()


class AssignmentSerializer(serializers.Serializer):
    model = serializers.CharField()
    backend = serializers.CharField()
    gpus = serializers.IntegerField()
    share_gpu = serializers.BooleanField()
    n_ctx = serializers.IntegerField()
    concurrency = serializers.IntegerField()
    node = serializers.CharField()
    devices = serializers.ListField(child=serializers.CharField())
    state = serializers.CharField()
    reason = serializers.CharField()
    loras = LoraSelectionSerializer(many=True)
    published_loras = serializers.ListField(child=serializers.CharField())
    lora_problems = serializers.ListField(child=serializers.CharField())


class AssignmentInSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=100)
    backend = serializers.ChoiceField(choices=["transformers", "vllm"], required=False)
    gpus = serializers.IntegerField(required=False, min_value=0, max_value=4)
    share_gpu = serializers.BooleanField(required=False, default=False)
    n_ctx = serializers.IntegerField(required=False, min_value=1)
    concurrency = serializers.IntegerField(required=False, min_value=1, max_value=256)


class AssignmentChangeSerializer(AssignmentInSerializer):
    model = None  # taken from the URL


class LoraActivateSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["off", "best_of_latest", "specific"])
    run = serializers.CharField(required=False, allow_blank=True, max_length=30)
    checkpoint = serializers.CharField(required=False, allow_blank=True, max_length=100)


class OpenAISerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    api_key = serializers.CharField(
        required=False, allow_blank=True, write_only=True, help_text="Omit to keep the saved key; empty removes it."
    )
    has_key = serializers.BooleanField(read_only=True)
    models = serializers.ListField(child=serializers.ChoiceField(choices=list(OPENAI_MODELS)), required=False)
    available_models = serializers.ListField(child=serializers.CharField(), read_only=True)
    warning = serializers.CharField(read_only=True)
