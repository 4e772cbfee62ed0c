"""Local NVIDIA GPU readings through NVML, and the energy an answer used.

``pynvml`` (from the ``nvidia-ml-py`` package) is imported only when a reading is asked
for, so machines without it (or without a driver) pay nothing and get a clear
:class:`NvmlUnavailable` value instead of an exception. Each NVML call that fails leaves
its field ``None``; the rest of the reading is still returned.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from kanoa_desktop.core.monitor.metrics import gpu_health_warnings

__all__ = [
    "EnergyMeter",
    "GpuReading",
    "LocalGpuReader",
    "NvmlUnavailable",
    "energy_wh",
    "pcie_warning",
    "read_local_gpus",
]

NO_DRIVER_LINE = "No NVIDIA driver: showing server metrics only."
# Below this utilisation a GPU may have lowered its PCIe generation to save power, which
# is normal; a lower generation under load is a real bottleneck.
_BUSY_UTILIZATION_PCT = 10.0


@dataclass(frozen=True)
class NvmlUnavailable:
    """NVML cannot be used here. ``message`` is the one line the panel shows;
    ``detail`` says why (no package, no library, driver not loaded...)."""

    detail: str
    message: str = NO_DRIVER_LINE


@dataclass(frozen=True)
class GpuReading:
    """One local GPU at one moment. Any field NVML could not give is ``None``."""

    index: int
    name: str | None = None
    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    pcie_gen: int | None = None
    pcie_width: int | None = None
    pcie_max_gen: int | None = None
    pcie_max_width: int | None = None

    @property
    def memory_fraction(self) -> float | None:
        """Used / total VRAM (0..1), or None when unknown."""
        if self.memory_used_bytes is None or not self.memory_total_bytes:
            return None
        return self.memory_used_bytes / self.memory_total_bytes

    @property
    def warnings(self) -> tuple[str, ...]:
        """Plain sentences a user can act on: PCIe link, VRAM nearly full, temperature."""
        label = f"GPU {self.index}" + (f" ({self.name})" if self.name else "")
        found: list[str] = []
        pcie = pcie_warning(self)
        if pcie:
            found.append(pcie)
        found += gpu_health_warnings(label, self.memory_fraction, self.temperature_c)
        return tuple(found)


def pcie_warning(reading: GpuReading) -> str | None:
    """A sentence when the PCIe link is narrow or old (typical of an eGPU), else None.

    Warns when the link has fewer than 4 lanes, when the best generation the slot allows is
    2 or older, or when the GPU is busy yet runs below the slot's best generation (an idle
    GPU lowers its generation to save power, so that alone is not a warning).
    """
    width = reading.pcie_width if reading.pcie_width is not None else reading.pcie_max_width
    gen, max_gen = reading.pcie_gen, reading.pcie_max_gen
    problems: list[str] = []
    if width is not None and width < 4:
        problems.append(f"only x{width} lanes")
    if max_gen is not None and max_gen <= 2:
        problems.append(f"PCIe generation {max_gen} at best")
    elif (
        gen is not None
        and max_gen is not None
        and gen < max_gen
        and reading.utilization_pct is not None
        and reading.utilization_pct >= _BUSY_UTILIZATION_PCT
    ):
        problems.append(f"running at PCIe generation {gen} of {max_gen} under load")
    if not problems:
        return None
    return (
        f"GPU {reading.index} link is slow ({', '.join(problems)}), as on an external GPU: "
        "this slows model loading and image upload. Use a faster slot or cable if you can."
    )


def _load_pynvml() -> ModuleType | NvmlUnavailable:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return NvmlUnavailable("The nvidia-ml-py package is not installed.")


def _call(pynvml: Any, fn: str, *args: Any) -> Any:
    try:
        return getattr(pynvml, fn)(*args)
    except pynvml.NVMLError:
        return None
    except AttributeError:  # an older pynvml without this call
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _read_one(pynvml: Any, index: int) -> GpuReading | None:
    handle = _call(pynvml, "nvmlDeviceGetHandleByIndex", index)
    if handle is None:
        return None
    util = _call(pynvml, "nvmlDeviceGetUtilizationRates", handle)
    memory = _call(pynvml, "nvmlDeviceGetMemoryInfo", handle)
    temperature = _call(
        pynvml, "nvmlDeviceGetTemperature", handle, getattr(pynvml, "NVML_TEMPERATURE_GPU", 0)
    )
    power_mw = _call(pynvml, "nvmlDeviceGetPowerUsage", handle)
    limit_mw = _call(pynvml, "nvmlDeviceGetEnforcedPowerLimit", handle)
    return GpuReading(
        index=index,
        name=_text(_call(pynvml, "nvmlDeviceGetName", handle)),
        utilization_pct=float(util.gpu) if util is not None else None,
        memory_used_bytes=int(memory.used) if memory is not None else None,
        memory_total_bytes=int(memory.total) if memory is not None else None,
        temperature_c=float(temperature) if temperature is not None else None,
        power_w=power_mw / 1000.0 if power_mw is not None else None,
        power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
        pcie_gen=_call(pynvml, "nvmlDeviceGetCurrPcieLinkGeneration", handle),
        pcie_width=_call(pynvml, "nvmlDeviceGetCurrPcieLinkWidth", handle),
        pcie_max_gen=_call(pynvml, "nvmlDeviceGetMaxPcieLinkGeneration", handle),
        pcie_max_width=_call(pynvml, "nvmlDeviceGetMaxPcieLinkWidth", handle),
    )


class LocalGpuReader:
    """Reads local GPUs repeatedly with one NVML session (``nvmlInit`` once, not per poll).

    ``read()`` returns a list of :class:`GpuReading` (possibly empty) or
    :class:`NvmlUnavailable`; it never raises for NVML failures. Once NVML is found
    unavailable the answer is remembered. Blocking (driver calls): run it in a worker
    thread (``asyncio.to_thread``) from a GUI. ``close()`` shuts NVML down.
    """

    def __init__(self) -> None:
        self._pynvml: Any = None
        self._unavailable: NvmlUnavailable | None = None

    def _ensure(self) -> Any:
        if self._pynvml is not None or self._unavailable is not None:
            return self._pynvml
        module = _load_pynvml()
        if isinstance(module, NvmlUnavailable):
            self._unavailable = module
            return None
        try:
            module.nvmlInit()
        except module.NVMLError as err:
            self._unavailable = NvmlUnavailable(f"NVML could not start: {err}.")
            return None
        self._pynvml = module
        return module

    def read(self) -> list[GpuReading] | NvmlUnavailable:
        pynvml = self._ensure()
        if pynvml is None:
            assert self._unavailable is not None
            return self._unavailable
        count = _call(pynvml, "nvmlDeviceGetCount")
        readings = [_read_one(pynvml, i) for i in range(count or 0)]
        return [r for r in readings if r is not None]

    def close(self) -> None:
        if self._pynvml is not None:
            try:
                self._pynvml.nvmlShutdown()
            except self._pynvml.NVMLError:
                pass
            self._pynvml = None


def read_local_gpus() -> list[GpuReading] | NvmlUnavailable:
    """One-shot reading of every local NVIDIA GPU, or why there is none to read."""
    reader = LocalGpuReader()
    try:
        return reader.read()
    finally:
        reader.close()


def energy_wh(average_watts: float, duration_s: float) -> float:
    """Energy in watt-hours for a mean power over a duration."""
    return average_watts * duration_s / 3600.0


class EnergyMeter:
    """Integrates power samples over time (trapezoids) into watt-hours.

    Feed ``add(timestamp_s, watts)`` with increasing monotonic timestamps; ``wh`` is the
    energy between the first and last sample, ``average_w`` the mean power (None before two
    samples).
    """

    def __init__(self) -> None:
        self._first: float | None = None
        self._last: tuple[float, float] | None = None
        self._joules = 0.0

    def add(self, timestamp_s: float, watts: float) -> None:
        if self._last is not None:
            t0, w0 = self._last
            if timestamp_s <= t0:
                return
            self._joules += (w0 + watts) / 2.0 * (timestamp_s - t0)
        else:
            self._first = timestamp_s
        self._last = (timestamp_s, watts)

    @property
    def duration_s(self) -> float:
        if self._first is None or self._last is None:
            return 0.0
        return self._last[0] - self._first

    @property
    def wh(self) -> float:
        return self._joules / 3600.0

    @property
    def average_w(self) -> float | None:
        duration = self.duration_s
        return self._joules / duration if duration > 0 else None
