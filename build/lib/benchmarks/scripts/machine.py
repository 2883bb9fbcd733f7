"""A short description of the machine, committed beside every measured number."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone


def describe() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": str(cores), "memory": mem, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}", "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}


def as_markdown(info: dict[str, str] | None = None) -> str:
    info = info or describe()
    return (f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM, Python {info['python']}, "
            f"{info['os']} (measured {info['date']}).")
