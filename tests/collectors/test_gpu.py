"""The gpu collector.

This machine has no NVIDIA GPU and no driver: the unavailable path is tested with the real nvidia-ml-py
library against the real (absent) driver. The value mapping (units, NotSupported fields, init and shutdown)
is tested with a fake NVML module injected through ``nvml=``, because there is no GPU here to read.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from dataclasses import dataclass

import pytest
from support import require

from perfpulse.collectors.gpu import GpuCollector


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_DriverNotLoaded(NVMLError):
    pass


class NVMLError_FunctionNotFound(NVMLError):
    pass


class NVMLError_GPUIsLost(NVMLError):
    pass


@dataclass
class Util:
    gpu: int
    memory: int


@dataclass
class Mem:
    total: int
    used: int
    free: int


class FakeNVML:
    """Just the NVML calls the collector makes, returning what a two-GPU machine would."""

    NVMLError = NVMLError
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0
    NVML_PCIE_UTIL_TX_BYTES = 0
    NVML_PCIE_UTIL_RX_BYTES = 1

    def __init__(self, init_error: Exception | None = None) -> None:
        self.init_error = init_error
        self.inits = 0
        self.shutdowns = 0
        self.lost = False

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.init_error
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return 100 + i

    def nvmlDeviceGetName(self, h: int) -> bytes | str:
        return b"NVIDIA H100 80GB HBM3" if h == 100 else "NVIDIA T4"

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-{h}"

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Util:
        if self.lost and h == 101:
            raise NVMLError_GPUIsLost("GPU is lost")
        return Util(gpu=87, memory=40)

    nvmlMemory_v2 = 0x02000028

    def nvmlDeviceGetMemoryInfo(self, h: int, version: int | None = None) -> Mem:
        if version is None:  # v1 counts driver-reserved memory as used
            return Mem(total=80 * 2**30, used=12 * 2**30 + 512 * 2**20, free=68 * 2**30 - 512 * 2**20)
        if h == 101:
            raise NVMLError_FunctionNotFound("Function Not Found")  # an old driver: v1 only
        assert version == self.nvmlMemory_v2
        return Mem(total=80 * 2**30, used=12 * 2**30, free=68 * 2**30 - 512 * 2**20)

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return 312_456  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        if h == 101:
            raise NVMLError_NotSupported("Not Supported")  # pre-Volta boards
        return 9_876_543  # mJ

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        assert sensor == 0
        return 64

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        return {1: 1980, 2: 2619}[clock]  # MHz

    def nvmlDeviceGetPcieThroughput(self, h: int, counter: int) -> int:
        if h == 101:
            raise NVMLError_NotSupported("Not Supported")  # vGPU
        return {0: 1000, 1: 250}[counter]  # KB/s


def test_value_mapping_with_a_fake_nvml() -> None:
    nv = FakeNVML()
    c = GpuCollector(nvml=nv)
    assert c.is_available()
    data = asyncio.run(c.collect())
    assert data["count"] == 2
    assert data["driver_version"] == "550.54.15"
    h100, t4 = data["gpus"]["0"], data["gpus"]["1"]
    assert h100["name"] == "NVIDIA H100 80GB HBM3"  # bytes from older bindings decoded
    assert t4["name"] == "NVIDIA T4"
    assert h100["uuid"] == "GPU-100"
    assert h100["utilization_ratio"] == 0.87
    assert h100["memory_utilization_ratio"] == 0.40
    assert h100["memory_used_bytes"] == 12 * 2**30  # v2, like nvidia-smi
    assert t4["memory_used_bytes"] == 12 * 2**30 + 512 * 2**20  # v1 where v2 is missing
    assert h100["memory_total_bytes"] == 80 * 2**30
    assert h100["power_watts"] == 312.456
    assert h100["energy_joules_total"] == 9876.543
    assert h100["temperature_celsius"] == 64
    assert h100["sm_clock_hertz"] == 1_980_000_000
    assert h100["memory_clock_hertz"] == 2_619_000_000
    assert h100["pcie_rx_bytes_per_second"] == 250 * 1024
    assert h100["pcie_tx_bytes_per_second"] == 1000 * 1024
    # Unsupported fields are null, not 0, and are not errors.
    assert t4["pcie_rx_bytes_per_second"] is None
    assert t4["energy_joules_total"] is None
    assert t4["errors"] == []
    samples = {s.series_key: s.value for s in c.samples(data)}
    assert samples['gpu_power_watts{gpu="0"}'] == 312.456
    assert samples['gpu_utilization_ratio{gpu="1"}'] == 0.87
    assert 'gpu_pcie_rx_bytes_per_second{gpu="1"}' not in samples
    c.collect_sync()
    assert nv.inits == 1  # initialised once, handles cached
    c.close()
    c.close()
    assert nv.shutdowns == 1


def test_a_failing_gpu_reports_the_error_and_the_others_still_read() -> None:
    nv = FakeNVML()
    c = GpuCollector(nvml=nv, pcie=False)
    nv.lost = True
    data = c.collect_sync()
    assert data["gpus"]["1"]["utilization_ratio"] is None
    assert "GPU is lost" in data["gpus"]["1"]["errors"][0]
    assert data["gpus"]["0"]["utilization_ratio"] == 0.87
    assert data["gpus"]["0"]["pcie_rx_bytes_per_second"] is None  # pcie=False skips the 20 ms samples
    c.close()


def test_a_gpu_that_cannot_be_opened_is_skipped_and_named() -> None:
    nv = FakeNVML()

    def handle(i: int) -> int:
        if i == 1:
            raise NVMLError_GPUIsLost("GPU is lost")
        return 100 + i

    nv.nvmlDeviceGetHandleByIndex = handle
    c = GpuCollector(nvml=nv, pcie=False)
    data = c.collect_sync()
    assert list(data["gpus"]) == ["0"]
    assert data["skipped"] == ["GPU 1: GPU is lost"]
    c.close()


def test_no_gpu_at_all() -> None:
    nv = FakeNVML()
    nv.nvmlDeviceGetCount = lambda: 0
    c = GpuCollector(nvml=nv)
    assert c.unavailable_reason() == "NVML found no usable NVIDIA GPU"
    assert nv.shutdowns == 1  # initialised, found nothing, shut down again


def test_driver_not_loaded_gives_reason_and_hint() -> None:
    nv = FakeNVML(init_error=NVMLError_DriverNotLoaded("Driver Not Loaded"))
    c = GpuCollector(nvml=nv)
    assert not c.is_available()
    assert c.unavailable_reason() == "the NVIDIA kernel driver is not loaded"
    assert "modprobe nvidia" in (c.hint() or "")
    data = c.collect_sync()
    assert data["available"] is False
    assert "modprobe" in data["hint"]
    c.close()
    assert nv.shutdowns == 0  # never initialised, nothing to shut down


def test_real_library_without_a_driver() -> None:
    """The real nvidia-ml-py on a machine with no NVIDIA driver: NVMLError_LibraryNotFound."""
    require(importlib.util.find_spec("pynvml") is not None, "needs nvidia-ml-py (perfpulse[gpu])")
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        pass
    else:  # pragma: no cover - a machine with a driver
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is present here; the no-driver path cannot be shown")
    c = GpuCollector()
    assert not c.is_available()
    assert "libnvidia-ml.so.1" in (c.unavailable_reason() or "")
    assert "install the NVIDIA driver" in (c.hint() or "")
    data = asyncio.run(c.collect())
    assert data == {"available": False, "reason": c.unavailable_reason(), "hint": c.hint()}
    c.close()


def test_binding_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulates an install without the gpu extra: a None entry in sys.modules makes ``import pynvml``
    raise ImportError (the binding is installed here for the other tests)."""
    monkeypatch.setitem(sys.modules, "pynvml", None)
    c = GpuCollector()
    assert c.unavailable_reason() == "the NVML binding nvidia-ml-py is not installed"
    assert "perfpulse[gpu]" in (c.hint() or "")
    assert c.collect_sync()["available"] is False
