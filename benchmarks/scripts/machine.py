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
            "os": f"{platform.system()} {platform.release()}", "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "flags_of_note": flags_of_note()}


NOTED = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def flags_of_note() -> list[str]:
    """The CPU flags that decide fast encoding (AVX-512, VNNI, BF16, AMX), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in NOTED if f in have]
    except OSError:
        pass
    return []


def write_keeping_reading(path, text: str) -> None:
    """Write a results file, keeping the hand-written ``## Reading`` section an earlier version ended with
    (what the numbers mean is written by a person after the run; re-measuring must not erase it)."""
    from pathlib import Path

    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    marker = "\n## Reading"
    kept = old[old.index(marker):] if marker in old else ""
    path.write_text(text.rstrip("\n") + "\n" + kept, encoding="utf-8")


def as_markdown(info: dict[str, str] | None = None) -> str:
    info = info or describe()
    return (f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM, Python {info['python']}, "
            f"{info['os']} (measured {info['date']}).")
