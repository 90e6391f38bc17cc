"""The machine: the torch device from a user string (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``), and its cores."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from artalk_core.errors import InputError

if TYPE_CHECKING:
    import torch

_KINDS = ("cpu", "cuda", "mps")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA if available, else CPU; an explicit device must exist (else InputError)."""
    import torch

    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"unknown device '{device}': use auto, cpu, cuda or cuda:N") from exc
    if dev.type not in _KINDS:
        raise InputError(f"unsupported device '{device}': use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device '{device}' requested but CUDA is not available here: "
                             "use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device '{device}' does not exist: {torch.cuda.device_count()} CUDA device(s) found")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InputError(f"device '{device}' requested but MPS is not available here: use --device cpu (or auto)")
    return dev


def cpu_count() -> int:
    """Cores this process may use (the affinity mask where there is one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


__all__ = ["cpu_count", "resolve_device"]
