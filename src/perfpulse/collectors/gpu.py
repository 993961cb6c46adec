"""NVIDIA GPUs through NVML (the nvidia-ml-py binding, ``import pynvml``; optional extra ``perfpulse[gpu]``).

NVML is initialised once, on first use, and device handles are cached; ``close()`` shuts it down. A field the
GPU does not support (NVMLError_NotSupported, common on consumer boards and in vGPUs) is null, not 0.
Where NVML cannot start, the reason names the missing part: the Python binding, the driver's library, or the
kernel driver. ``nvmlDeviceGetPcieThroughput`` samples a byte counter over 20 ms inside the driver, so each
GPU's PCIe pair costs about 40 ms of a worker thread per tick; ``pcie=False`` turns it off.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from perfpulse.collectors.base import BaseCollector, Roots, register, run_blocking, unavailable
from perfpulse.model import MetricSpec

_INSTALL_HINT = "install the optional extra: pip install 'perfpulse[gpu]' (it provides nvidia-ml-py)"

#: NVML init failures a user can meet, by exception class name (pynvml generates one class per return code).
_INIT_ERRORS: dict[str, tuple[str, str]] = {
    "NVMLError_LibraryNotFound": (
        "the NVIDIA driver's NVML library (libnvidia-ml.so.1) was not found: no NVIDIA driver is installed",
        "install the NVIDIA driver (it ships libnvidia-ml.so.1); in a container, start it with the NVIDIA "
        "container toolkit (--gpus all); on a machine without an NVIDIA GPU, disable the gpu collector",
    ),
    "NVMLError_DriverNotLoaded": (
        "the NVIDIA kernel driver is not loaded",
        "load it (modprobe nvidia) and check that `nvidia-smi` works",
    ),
    "NVMLError_NoPermission": (
        "no permission to talk to the NVIDIA driver",
        "run perfpulse as a user that can open /dev/nvidiactl and /dev/nvidia*",
    ),
    "NVMLError_LibRmVersionMismatch": (
        "the NVIDIA driver library and kernel module have different versions",
        "reboot, or reload the nvidia kernel module, after a driver upgrade",
    ),
}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _gpu_metric(name: str, unit: str, what: str, key: str, kind: str = "gauge") -> MetricSpec:
    return MetricSpec(
        name, unit, "counter" if kind == "counter" else "gauge", what, f"gpus.*.{key}", ("gpu",)
    )


@register
class GpuCollector(BaseCollector):
    name = "gpu"
    catalogue = (
        _gpu_metric("gpu_utilization_ratio", "ratio", "Time a kernel ran on the GPU", "utilization_ratio"),
        _gpu_metric(
            "gpu_memory_utilization_ratio",
            "ratio",
            "Time device memory was read or written",
            "memory_utilization_ratio",
        ),
        _gpu_metric("gpu_memory_used_bytes", "bytes", "Device memory in use", "memory_used_bytes"),
        _gpu_metric("gpu_memory_total_bytes", "bytes", "Device memory size", "memory_total_bytes"),
        _gpu_metric("gpu_power_watts", "watts", "Board power draw", "power_watts"),
        _gpu_metric(
            "gpu_energy_joules_total",
            "joules",
            "Energy since the driver loaded",
            "energy_joules_total",
            "counter",
        ),
        _gpu_metric("gpu_temperature_celsius", "celsius", "GPU core temperature", "temperature_celsius"),
        _gpu_metric("gpu_sm_clock_hertz", "hertz", "Streaming-multiprocessor clock", "sm_clock_hertz"),
        _gpu_metric("gpu_memory_clock_hertz", "hertz", "Memory clock", "memory_clock_hertz"),
        _gpu_metric(
            "gpu_pcie_rx_bytes_per_second",
            "bytes_per_second",
            "PCIe receive (20 ms sample)",
            "pcie_rx_bytes_per_second",
        ),
        _gpu_metric(
            "gpu_pcie_tx_bytes_per_second",
            "bytes_per_second",
            "PCIe transmit (20 ms sample)",
            "pcie_tx_bytes_per_second",
        ),
    )

    def __init__(
        self,
        *,
        roots: Roots | None = None,
        enabled: bool = True,
        timeout: float | None = None,
        nvml: ModuleType | Any | None = None,
        pcie: bool = True,
    ) -> None:
        super().__init__(roots=roots, enabled=enabled, timeout=timeout)
        self._injected = nvml
        self.pcie = pcie
        self._lock = threading.Lock()
        self._nvml: Any = None  # the initialised module, None until init succeeded
        self._tried = False
        self._reason: str | None = None
        self._hint: str | None = None
        self._devices: list[tuple[int, Any, str, str]] = []  # index, handle, name, uuid
        self._driver: str | None = None
        self._init_problems: list[str] = []

    # -- NVML life cycle ----------------------------------------------------------------------------------
    def _init(self) -> None:
        with self._lock:
            if self._tried:
                return
            self._tried = True
            try:
                mod = self._injected if self._injected is not None else importlib.import_module("pynvml")
            except ImportError:
                self._reason, self._hint = "the NVML binding nvidia-ml-py is not installed", _INSTALL_HINT
                return
            try:
                mod.nvmlInit()
            except mod.NVMLError as exc:
                self._reason, self._hint = _INIT_ERRORS.get(
                    type(exc).__name__, (f"NVML failed to initialise: {exc}", "check that `nvidia-smi` works")
                )
                return
            problems: list[str] = []
            try:
                count = mod.nvmlDeviceGetCount()
                self._driver = _text(mod.nvmlSystemGetDriverVersion())
            except mod.NVMLError as exc:
                count = 0
                problems.append(str(exc))
            for i in range(count):
                try:  # one GPU that is lost or not permitted must not hide the others
                    h = mod.nvmlDeviceGetHandleByIndex(i)
                    name, uuid = _text(mod.nvmlDeviceGetName(h)), _text(mod.nvmlDeviceGetUUID(h))
                except mod.NVMLError as exc:
                    problems.append(f"GPU {i}: {exc}")
                    continue
                self._devices.append((i, h, name, uuid))
            self._init_problems = problems
            if not self._devices:
                self._shutdown(mod)
                detail = f": {'; '.join(problems)}" if problems else ""
                self._reason, self._hint = f"NVML found no usable NVIDIA GPU{detail}", "check `nvidia-smi`"
                return
            self._nvml = mod

    def _shutdown(self, mod: Any) -> None:
        self._devices = []
        with contextlib.suppress(mod.NVMLError):
            mod.nvmlShutdown()

    def close(self) -> None:
        with self._lock:
            if self._nvml is not None:
                self._shutdown(self._nvml)
                self._nvml = None
            self._tried = False
            self._reason = self._hint = None

    def unavailable_reason(self) -> str | None:
        self._init()
        return self._reason

    def hint(self) -> str | None:
        self._init()
        return self._hint

    # -- collection ---------------------------------------------------------------------------------------
    def blocking_call(self) -> Callable[[], dict[str, Any]]:
        return self.collect_sync

    async def collect(self) -> dict[str, Any]:
        return await run_blocking(self.collect_sync)

    def collect_sync(self) -> dict[str, Any]:
        self._init()
        nv = self._nvml
        if nv is None:
            return unavailable(self._reason or "NVML is not initialised", self._hint)
        gpus = {str(i): self._read_gpu(nv, h, name, uuid) for i, h, name, uuid in self._devices}
        out: dict[str, Any] = {"count": len(gpus), "driver_version": self._driver, "gpus": gpus}
        if self._init_problems:
            out["skipped"] = self._init_problems
        return out

    def _read_gpu(self, nv: Any, h: Any, name: str, uuid: str) -> dict[str, Any]:
        errors: list[str] = []

        def get(fn: str, *args: Any) -> Any:
            try:
                return getattr(nv, fn)(h, *args)
            except nv.NVMLError as exc:
                if type(exc).__name__ != "NVMLError_NotSupported":
                    errors.append(f"{fn}: {exc}")
                return None

        util = get("nvmlDeviceGetUtilizationRates")
        mem = None
        v2 = getattr(nv, "nvmlMemory_v2", None)
        if v2 is not None:  # v2 (driver 510+) leaves out driver-reserved memory, as nvidia-smi does
            try:
                mem = nv.nvmlDeviceGetMemoryInfo(h, version=v2)
            except nv.NVMLError:  # an older driver without nvmlDeviceGetMemoryInfo_v2
                mem = None
        if mem is None:
            mem = get("nvmlDeviceGetMemoryInfo")
        power_mw = get("nvmlDeviceGetPowerUsage")
        energy_mj = get("nvmlDeviceGetTotalEnergyConsumption")
        sm = get("nvmlDeviceGetClockInfo", nv.NVML_CLOCK_SM)
        memclk = get("nvmlDeviceGetClockInfo", nv.NVML_CLOCK_MEM)
        rx = tx = None
        if self.pcie:
            rx = get("nvmlDeviceGetPcieThroughput", nv.NVML_PCIE_UTIL_RX_BYTES)
            tx = get("nvmlDeviceGetPcieThroughput", nv.NVML_PCIE_UTIL_TX_BYTES)
        return {
            "name": name,
            "uuid": uuid,
            "utilization_ratio": None if util is None else util.gpu / 100.0,
            "memory_utilization_ratio": None if util is None else util.memory / 100.0,
            "memory_used_bytes": None if mem is None else int(mem.used),
            "memory_total_bytes": None if mem is None else int(mem.total),
            "power_watts": None if power_mw is None else power_mw / 1000.0,
            "energy_joules_total": None if energy_mj is None else energy_mj / 1000.0,
            "temperature_celsius": get("nvmlDeviceGetTemperature", nv.NVML_TEMPERATURE_GPU),
            "sm_clock_hertz": None if sm is None else sm * 1_000_000,
            "memory_clock_hertz": None if memclk is None else memclk * 1_000_000,
            # NVML reports KB/s (KiB, as nvtop and nvidia-smi dmon read it).
            "pcie_rx_bytes_per_second": None if rx is None else rx * 1024,
            "pcie_tx_bytes_per_second": None if tx is None else tx * 1024,
            "errors": errors,
        }
