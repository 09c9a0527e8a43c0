"""Each worker registers its devices (the CPU always; GPUs with their memory) and starts its supervisor."""

from __future__ import annotations

from gpu_worker.devices import detect_backends, detect_devices
from gpu_worker.runtime import WorkerRuntime
from hosting.models import WorkerNode
from tests.support.server import wait_until


def test_detect_devices_always_lists_the_cpu():
    devices = detect_devices()
    cpu = devices[-1]
    assert cpu["id"] == "cpu" and cpu["kind"] == "cpu" and cpu["memory_total_mb"] > 0
    assert all(d["kind"] == "gpu" and d["memory_total_mb"] > 0 for d in devices[:-1])
    assert detect_backends([cpu]) == ["transformers"]


def test_runtime_heartbeat_registers_devices_and_starts_the_supervisor(transactional_db, broker):
    runtime = WorkerRuntime(embedded=False, threads=1, name="devices-test")
    runtime.start()
    try:
        assert runtime.registered.wait(30)
        node = WorkerNode.objects.get(name="devices-test")
        assert any(d["id"] == "cpu" for d in node.devices) and "transformers" in node.backends
        wait_until(lambda: runtime.supervisor is not None, timeout=10, message="the supervisor")
    finally:
        runtime.stop()
    assert not WorkerNode.objects.filter(name="devices-test").exists()
