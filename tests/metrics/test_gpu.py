"""Local GPU readings through a fake at the pynvml boundary, PCIe warnings and energy."""

from __future__ import annotations

import sys

import pytest

from kanoa_desktop.core.monitor.gpu import (
    EnergyMeter,
    GpuReading,
    LocalGpuReader,
    NvmlUnavailable,
    energy_wh,
    pcie_warning,
    read_local_gpus,
)
from tests.metrics import fake_pynvml
from tests.metrics.fake_pynvml import FakeGpu


@pytest.fixture
def install(monkeypatch):
    def _install(gpus, init_error=None):
        module = fake_pynvml.make_module(gpus, init_error)
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return module

    return _install


@pytest.mark.parametrize(
    "error", [fake_pynvml.NVMLError_LibraryNotFound, fake_pynvml.NVMLError_DriverNotLoaded]
)
def test_no_driver_gives_the_one_line_status_instead_of_an_exception(install, error):
    install([], init_error=error)
    result = read_local_gpus()
    assert isinstance(result, NvmlUnavailable)
    assert result.message == "No NVIDIA driver: showing server metrics only."
    assert "NVML could not start" in result.detail


def test_missing_package_is_reported_as_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    result = read_local_gpus()
    assert isinstance(result, NvmlUnavailable)
    assert "nvidia-ml-py" in result.detail


def test_reading_converts_nvml_units(install):
    module = install([FakeGpu()])
    [gpu] = read_local_gpus()
    assert gpu.name == "NVIDIA GeForce RTX 4090"
    assert gpu.utilization_pct == 35.0
    assert gpu.memory_used_bytes == 6 * 2**30 and gpu.memory_total_bytes == 24 * 2**30
    assert gpu.memory_fraction == pytest.approx(0.25)
    assert gpu.temperature_c == 60.0
    assert gpu.power_w == 250.0 and gpu.power_limit_w == 450.0  # from milliwatts
    assert (gpu.pcie_gen, gpu.pcie_width, gpu.pcie_max_gen, gpu.pcie_max_width) == (4, 16, 4, 16)
    assert gpu.warnings == ()
    assert module.calls == ["init", "shutdown"]


def test_a_call_that_fails_leaves_only_that_field_none(install):
    install([FakeGpu(unsupported={"power", "pcie"})])
    [gpu] = read_local_gpus()
    assert gpu.power_w is None and gpu.pcie_width is None
    assert gpu.temperature_c == 60.0 and gpu.utilization_pct == 35.0


def test_bytes_names_from_old_pynvml_are_decoded(install):
    install([FakeGpu(name=b"Tesla T4")])
    assert read_local_gpus()[0].name == "Tesla T4"


def test_reader_initialises_nvml_once_for_many_reads(install):
    module = install([FakeGpu(), FakeGpu(name="second")])
    reader = LocalGpuReader()
    for _ in range(3):
        assert [g.index for g in reader.read()] == [0, 1]
    reader.close()
    assert module.calls == ["init", "shutdown"]


@pytest.mark.parametrize(
    ("pcie", "util", "expected"),
    [
        ((4, 16, 4, 16), 90, None),  # full link
        ((3, 1, 3, 1), 0, "only x1 lanes"),  # eGPU over a single lane
        ((2, 16, 2, 16), 0, "PCIe generation 2 at best"),  # old slot
        ((1, 16, 4, 16), 0, None),  # idle GPU lowered its generation to save power
        ((1, 16, 4, 16), 80, "running at PCIe generation 1 of 4 under load"),
    ],
)
def test_pcie_warning(install, pcie, util, expected):
    install([FakeGpu(pcie=pcie, util=util)])
    [gpu] = read_local_gpus()
    warning = pcie_warning(gpu)
    if expected is None:
        assert warning is None
        assert gpu.warnings == ()
    else:
        assert expected in warning
        assert "slows model loading and image upload" in warning
        assert warning in gpu.warnings


def test_vram_nearly_full_and_hot_gpu_warn():
    gpu = GpuReading(index=0, memory_used_bytes=97, memory_total_bytes=100, temperature_c=90)
    text = " ".join(gpu.warnings)
    assert "memory is 97% full" in text and "90 °C" in text


def test_unknown_fields_give_no_warnings():
    assert GpuReading(index=0).warnings == ()
    assert GpuReading(index=0).memory_fraction is None


def test_energy_helpers():
    assert energy_wh(300.0, 36.0) == pytest.approx(3.0)  # 300 W for 1/100 h


def test_energy_meter_integrates_trapezoids():
    meter = EnergyMeter()
    assert meter.average_w is None
    meter.add(0.0, 100.0)
    meter.add(10.0, 300.0)  # mean 200 W for 10 s = 2000 J
    meter.add(20.0, 300.0)  # 300 W for 10 s = 3000 J
    assert meter.wh == pytest.approx(5000 / 3600)
    assert meter.average_w == pytest.approx(250.0)
    assert meter.duration_s == 20.0
