"""Local: no CI platform. The report goes to the terminal; nothing fails for want of a platform."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_gates.platforms.base import Published


@dataclass
class Local:
    name: str = "local"

    def publish(self, rec: dict[str, Any], report: str, out_dir: Path) -> Published:
        print(report)
        return Published(self.name, comment="printed")
