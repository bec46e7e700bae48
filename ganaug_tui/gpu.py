"""GPU memory and utilisation for the Live screen: NVML (nvidia-ml-py) when it loads, else ``nvidia-smi``.

No GPU, no driver, or a tool that fails: an empty list (the panel is simply not shown), never an error.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

_QUERY = "index,name,memory.used,memory.total,utilization.gpu"


def probe() -> list[dict[str, Any]]:
    """One dict per GPU: ``index, name, mem_used, mem_total`` (MiB) and ``util`` (%)."""
    return _nvml() or _nvidia_smi()


def _nvml() -> list[dict[str, Any]]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            name = pynvml.nvmlDeviceGetName(h)
            out.append({"index": i, "name": name.decode() if isinstance(name, bytes) else str(name),
                        "mem_used": mem.used / 2**20, "mem_total": mem.total / 2**20,
                        "util": float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)})
        return out
    except pynvml.NVMLError:
        return []
    finally:
        pynvml.nvmlShutdown()


def _nvidia_smi() -> list[dict[str, Any]]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        text = subprocess.run([smi, f"--query-gpu={_QUERY}", "--format=csv,noheader,nounits"], capture_output=True,
                              text=True, timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return parse_smi(text)


def parse_smi(text: str) -> list[dict[str, Any]]:
    """Rows of ``nvidia-smi --query-gpu=index,name,memory.used,memory.total,utilization.gpu --format=csv,noheader,
    nounits``; a field the driver reports as ``[N/A]`` becomes NaN."""
    out = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue
        index, name, *nums = parts
        values = []
        for v in nums:
            try:
                values.append(float(v))
            except ValueError:
                values.append(float("nan"))
        out.append({"index": int(index), "name": name, "mem_used": values[0], "mem_total": values[1],
                    "util": values[2]})
    return out
