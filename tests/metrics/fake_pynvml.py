"""A stand-in for the ``pynvml`` module (NVML cannot run without an NVIDIA GPU here).

It mirrors the real module's surface that kanoa uses: the ``NVMLError`` hierarchy and the
``nvml*`` calls, with values in NVML's units (bytes, milliwatts).
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N801 - pynvml's own names
    pass


class NVMLError_DriverNotLoaded(NVMLError):  # noqa: N801
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801
    pass


@dataclass
class FakeGpu:
    name: str = "NVIDIA GeForce RTX 4090"
    util: int = 35
    used: int = 6 * 2**30
    total: int = 24 * 2**30
    temp: int = 60
    power_mw: int = 250_000
    limit_mw: int = 450_000
    pcie: tuple[int, int, int, int] = (4, 16, 4, 16)  # current gen, width, max gen, width
    unsupported: set[str] = field(default_factory=set)


def make_module(gpus: list[FakeGpu], init_error: type[NVMLError] | None = None):
    """A module object to put in ``sys.modules['pynvml']``; ``.calls`` records init/shutdown."""
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    m.NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    m.NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    m.NVMLError_NotSupported = NVMLError_NotSupported
    m.NVML_TEMPERATURE_GPU = 0
    m.calls = []

    def nvmlInit():
        m.calls.append("init")
        if init_error is not None:
            raise init_error()

    def nvmlShutdown():
        m.calls.append("shutdown")

    def call(fn, value):
        def wrapper(handle, *args):
            if fn in handle.unsupported:
                raise NVMLError_NotSupported()
            return value(handle, *args)

        return wrapper

    m.nvmlInit = nvmlInit
    m.nvmlShutdown = nvmlShutdown
    m.nvmlDeviceGetCount = lambda: len(gpus)
    m.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    m.nvmlDeviceGetName = call("name", lambda g: g.name)  # str in nvidia-ml-py >= 11.515
    m.nvmlDeviceGetUtilizationRates = call(
        "util", lambda g: types.SimpleNamespace(gpu=g.util, memory=10)
    )
    m.nvmlDeviceGetMemoryInfo = call(
        "memory", lambda g: types.SimpleNamespace(used=g.used, total=g.total, free=g.total - g.used)
    )
    m.nvmlDeviceGetTemperature = call("temp", lambda g, sensor: g.temp)
    m.nvmlDeviceGetPowerUsage = call("power", lambda g: g.power_mw)
    m.nvmlDeviceGetEnforcedPowerLimit = call("limit", lambda g: g.limit_mw)
    m.nvmlDeviceGetCurrPcieLinkGeneration = call("pcie", lambda g: g.pcie[0])
    m.nvmlDeviceGetCurrPcieLinkWidth = call("pcie", lambda g: g.pcie[1])
    m.nvmlDeviceGetMaxPcieLinkGeneration = call("pcie", lambda g: g.pcie[2])
    m.nvmlDeviceGetMaxPcieLinkWidth = call("pcie", lambda g: g.pcie[3])
    return m
