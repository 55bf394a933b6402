"""The speed benchmark's scaling chart: wall time and peak memory against rows, log axes, one line per tool,
written as a self-contained SVG (no plotting library needed)."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

W, H, PAD = 460, 330, 58  # one panel
COLOURS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bc4c00", "#57606a", "#0a7480", "#cf222e"]


def _ticks(lo: float, hi: float) -> list[float]:
    return [10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def _label(v: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= size:
            return f"{v / size:g}{unit}"
    return f"{v:g}"


def _panel(x0: int, title: str, series: dict[str, list[tuple[float, float]]], unit: str) -> list[str]:
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts if y > 0]
    xt, yt = _ticks(min(xs), max(xs)), _ticks(min(ys), max(ys))
    lx, hx, ly, hy = math.log10(xt[0]), math.log10(xt[-1]), math.log10(yt[0]), math.log10(yt[-1])

    def px(x: float) -> float:
        return x0 + PAD + (math.log10(x) - lx) / max(hx - lx, 1e-9) * (W - 1.5 * PAD)

    def py(y: float) -> float:
        return H - PAD + (math.log10(y) - ly) / max(hy - ly, 1e-9) * -(H - 1.6 * PAD)

    out = [f'<text x="{x0 + W / 2}" y="22" text-anchor="middle" font-weight="bold">{escape(title)}</text>']
    for x in xt:
        out.append(
            f'<line x1="{px(x):.1f}" y1="{py(yt[0]):.1f}" x2="{px(x):.1f}" y2="{py(yt[-1]):.1f}" stroke="#d0d7de"/>'
        )
        out.append(f'<text x="{px(x):.1f}" y="{H - PAD + 18}" text-anchor="middle">{_label(x)}</text>')
    for y in yt:
        out.append(
            f'<line x1="{px(xt[0]):.1f}" y1="{py(y):.1f}" x2="{px(xt[-1]):.1f}" y2="{py(y):.1f}" stroke="#d0d7de"/>'
        )
        out.append(f'<text x="{x0 + PAD - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{_label(y)}</text>')
    out.append(f'<text x="{x0 + W / 2}" y="{H - 14}" text-anchor="middle">rows (log)</text>')
    out.append(
        f'<text x="{x0 + 14}" y="{H / 2}" text-anchor="middle" transform="rotate(-90 {x0 + 14} {H / 2})">{unit} (log)</text>'
    )
    for (name, pts), colour in zip(series.items(), COLOURS, strict=False):
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts if y > 0)
        dash = ' stroke-dasharray="5 4"' if name.startswith("read") else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>' for x, y in pts if y > 0]
    return out


def write(results: list[tuple[int, dict[str, tuple[float, float]]]], path: Path, tools: list[str]) -> None:
    """`results`: (rows, tool -> (wall seconds, peak MB)); one line per tool in `tools` that was measured."""
    times: dict[str, list[tuple[float, float]]] = {}
    memory: dict[str, list[tuple[float, float]]] = {}
    for n, res in results:
        for tool in tools:
            if tool in res:
                times.setdefault(tool, []).append((n, res[tool][0]))
                memory.setdefault(tool, []).append((n, res[tool][1]))
    legend_h = 18 * len(times) + 10
    body = [*_panel(0, "wall time", times, "seconds"), *_panel(W, "peak memory", memory, "MB")]
    for i, (name, colour) in enumerate(zip(times, COLOURS, strict=False)):
        y = H + 14 + 18 * i
        body.append(f'<rect x="{PAD}" y="{y - 9}" width="14" height="4" fill="{colour}"/>')
        body.append(f'<text x="{PAD + 22}" y="{y}">{escape(name)}</text>')
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + legend_h}" '
        f'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n'
        + "\n".join(body)
        + "\n</svg>\n"
    )
