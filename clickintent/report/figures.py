"""The report's figures as inline SVG: gains with CI bars against the ceiling, the lift-vs-signal curve, the
taxonomy as a treemap, and the distilled labeller's reliability diagram.

Each returns a `<figure>` whose `<svg role="img">` carries an `aria-label` and a `<title>` (its alt text),
scales to the page width (viewBox) and needs nothing from outside the page. The embedding map is a PNG
(matplotlib) in `results.py`. Left out: interactivity, axes beyond what each figure needs to be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clickintent.distill.report import ReliabilityBin
from clickintent.report.html import esc, pct

PALETTE = ["#3b6ea8", "#d9822b", "#3a9a5b", "#b8434a", "#7d5ba6", "#8c6d46", "#c9629e", "#6f7b86",
           "#a6a23a", "#3aa6a6", "#5b7fd9", "#d95b5b"]
FONT = "font-family='system-ui,sans-serif'"


def _figure(svg_body: str, width: int, height: int, alt: str, caption: str) -> str:
    return (
        f"<figure><svg role='img' aria-label='{esc(alt)}' viewBox='0 0 {width} {height}' width='{width}' "
        f"xmlns='http://www.w3.org/2000/svg' {FONT} font-size='12'><title>{esc(alt)}</title>{svg_body}</svg>"
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


@dataclass
class Bar:
    name: str
    mean: float
    lo: float
    hi: float


def gain_bars(title: str, bars: Sequence[Bar], ceiling: Bar | None, unit: str = "nats per row") -> str:
    """Horizontal bars of each feature set's gain with its 95% CI, a zero line and the ceiling (dashed)."""
    width, left, right, row = 640, 190, 30, 26
    height = 40 + row * len(bars) + 30
    values = [v for b in bars for v in (b.lo, b.hi)] + ([ceiling.hi, ceiling.lo] if ceiling else []) + [0.0]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or 0.01
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    parts = [f"<text x='{left}' y='16' font-weight='600'>{esc(title)}</text>"]
    top = 30
    if ceiling is not None:
        cx = x(ceiling.mean)
        parts.append(f"<rect x='{x(ceiling.lo):.1f}' y='{top}' width='{max(x(ceiling.hi) - x(ceiling.lo), 1):.1f}' "
                     f"height='{row * len(bars)}' fill='#3a9a5b' opacity='0.12'/>")
        parts.append(f"<line x1='{cx:.1f}' x2='{cx:.1f}' y1='{top}' y2='{top + row * len(bars)}' stroke='#3a9a5b' "
                     "stroke-dasharray='5 3' stroke-width='1.5'/>")
        parts.append(f"<text x='{cx:.1f}' y='{top + row * len(bars) + 14}' fill='#2b7046' text-anchor='middle'>"
                     f"ceiling {ceiling.mean:+.4f}</text>")
    zx = x(0.0)
    parts.append(f"<line x1='{zx:.1f}' x2='{zx:.1f}' y1='{top - 4}' y2='{top + row * len(bars)}' stroke='#444'/>")
    for i, b in enumerate(bars):
        y = top + i * row
        x0, x1 = sorted((zx, x(b.mean)))
        color = PALETTE[0] if b.lo > 0 else "#9aa7b5"  # resolved gains in colour, the rest grey
        parts.append(f"<text x='{left - 8}' y='{y + 16}' text-anchor='end'>{esc(b.name)}</text>")
        parts.append(f"<rect x='{x0:.1f}' y='{y + 5}' width='{max(x1 - x0, 1):.1f}' height='{row - 10}' "
                     f"fill='{color}'/>")
        parts.append(f"<line x1='{x(b.lo):.1f}' x2='{x(b.hi):.1f}' y1='{y + row / 2}' y2='{y + row / 2}' "
                     "stroke='#1d2733' stroke-width='1.5'/>")
        for v in (b.lo, b.hi):
            parts.append(f"<line x1='{x(v):.1f}' x2='{x(v):.1f}' y1='{y + 8}' y2='{y + row - 8}' stroke='#1d2733'/>")
    parts.append(f"<text x='{width - right}' y='{height - 4}' text-anchor='end' fill='#5b6b7c'>gain, {esc(unit)} "
                 "(log loss of the baseline minus the feature set's); bars: 95% CI</text>")
    alt = f"{title}: " + "; ".join(f"{b.name} {b.mean:+.4f} [{b.lo:+.4f}, {b.hi:+.4f}]" for b in bars)
    if ceiling is not None:
        alt += f"; exact ceiling {ceiling.mean:+.4f}"
    return _figure("".join(parts), width, height, alt, f"{title}: each feature set's gain over the production "
                   "baseline with its 95% CI; grey bars are not resolved at this size.")


def curve(title: str, series: dict[str, list[tuple[float, float, float, float]]]) -> str:
    """Gain against signal, one line per feature set, points (signal, mean, lo, hi) with CI bars."""
    width, height, left, bottom, top, right = 640, 320, 60, 40, 30, 150
    points = [p for ps in series.values() for p in ps]
    xs = [p[0] for p in points] or [0.0, 1.0]
    ys = [v for p in points for v in p[1:]] + [0.0]
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs) or 1.0, min(ys), max(ys)
    pad = (y_hi - y_lo) * 0.08 or 0.01
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def px(v: float) -> float:
        return left + (v - x_lo) / ((x_hi - x_lo) or 1) * (width - left - right)

    def py(v: float) -> float:
        return height - bottom - (v - y_lo) / (y_hi - y_lo) * (height - bottom - top)

    parts = [f"<text x='{left}' y='16' font-weight='600'>{esc(title)}</text>",
             f"<line x1='{left}' x2='{width - right}' y1='{py(0):.1f}' y2='{py(0):.1f}' stroke='#444'/>"]
    for s in sorted(set(xs)):
        parts.append(f"<text x='{px(s):.1f}' y='{height - bottom + 16}' text-anchor='middle'>{s:g}</text>")
    parts.append(f"<text x='{(left + width - right) / 2}' y='{height - 6}' text-anchor='middle' fill='#5b6b7c'>"
                 "signal (0 = placebo world)</text>")
    for v in (y_lo + pad, (y_lo + y_hi) / 2, y_hi - pad):
        parts.append(f"<text x='{left - 6}' y='{py(v) + 4:.1f}' text-anchor='end' fill='#5b6b7c'>{v:+.3f}</text>")
    for i, (name, ps) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        ps = sorted(ps)
        path = " ".join(f"{'M' if j == 0 else 'L'}{px(p[0]):.1f},{py(p[1]):.1f}" for j, p in enumerate(ps))
        dash = " stroke-dasharray='5 3'" if name == "exact ceiling" else ""
        parts.append(f"<path d='{path}' fill='none' stroke='{color}' stroke-width='2'{dash}/>")
        for s, m, lo, hi in ps:
            parts.append(f"<line x1='{px(s):.1f}' x2='{px(s):.1f}' y1='{py(lo):.1f}' y2='{py(hi):.1f}' "
                         f"stroke='{color}'/><circle cx='{px(s):.1f}' cy='{py(m):.1f}' r='3' fill='{color}'/>")
        parts.append(f"<text x='{width - right + 8}' y='{top + 16 * i + 10}' fill='{color}'>{esc(name)}</text>")
    alt = f"{title}: " + "; ".join(
        f"{name}: " + ", ".join(f"{m:+.4f} at signal {s:g}" for s, m, _, _ in sorted(ps)) for name, ps in series.items()
    )
    return _figure("".join(parts), width, height, alt, f"{title} (simulated): mean gain over the world seeds, "
                   "bars are 95% t-intervals over the seeds.")


def treemap(title: str, categories: dict[str, list[tuple[str, float]]]) -> str:
    """Categories as columns as wide as their share, their labels stacked as tall as theirs."""
    width, height, top = 900, 340, 24
    total = sum(s for labels in categories.values() for _, s in labels) or 1.0
    parts = [f"<text x='0' y='16' font-weight='600'>{esc(title)}</text>"]
    x = 0.0
    for i, (cat, labels) in enumerate(sorted(categories.items(), key=lambda kv: -sum(s for _, s in kv[1]))):
        share = sum(s for _, s in labels)
        w = width * share / total
        color = PALETTE[i % len(PALETTE)]
        y = float(top)
        for name, s in sorted(labels, key=lambda kv: -kv[1]):
            h = (height - top) * (s / share if share else 0)
            parts.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{max(w - 2, 1):.1f}' height='{max(h - 2, 1):.1f}' "
                         f"fill='{color}' opacity='0.85'><title>{esc(cat)} &gt; {esc(name)}: {pct(s / total)}</title>"
                         "</rect>")
            if h > 30 and w > 70:
                chars = max(int(w / 7.5), 4)
                text = name if len(name) <= chars else name[: chars - 1] + "…"
                parts.append(f"<text x='{x + 5:.1f}' y='{y + 16:.1f}' fill='white' font-size='12'>{esc(text)}</text>"
                             f"<text x='{x + 5:.1f}' y='{y + 30:.1f}' fill='white' font-size='11'>"
                             f"{pct(s / total)}</text>")
            y += h
        if w > 60:
            chars = max(int(w / 7), 4)
            label = cat if len(cat) <= chars else cat[: chars - 1] + "…"
            parts.append(f"<text x='{x + 3:.1f}' y='{height + 16}' font-weight='600'>{esc(label)}</text>")
        x += w
    alt = f"{title}: " + "; ".join(
        f"{cat} ({pct(sum(s for _, s in labels) / total)}): "
        + ", ".join(f"{n} {pct(s / total)}" for n, s in sorted(labels, key=lambda kv: -kv[1]))
        for cat, labels in categories.items()
    )
    return _figure("".join(parts), width, height + 24, alt, f"{title}: each column is a site section (category) "
                   "as wide as its share of visits, each box a label as tall as its share within it.")


def reliability(bins: Sequence[ReliabilityBin], title: str = "Reliability of the distilled labeller") -> str:
    """Accuracy against mean confidence per confidence bin (held-out sessions), with the diagonal."""
    size, pad = 300, 44
    width, height = size + pad + 20, size + pad + 20

    def px(v: float) -> float:
        return pad + v * size

    def py(v: float) -> float:
        return 20 + (1 - v) * size

    n_max = max((b.n for b in bins), default=1)
    parts = [f"<rect x='{pad}' y='20' width='{size}' height='{size}' fill='none' stroke='#c5ced8'/>",
             f"<line x1='{px(0)}' y1='{py(0)}' x2='{px(1)}' y2='{py(1)}' stroke='#9aa7b5' stroke-dasharray='4 3'/>"]
    for b in bins:
        bar_w = (b.hi - b.lo) * size - 2
        parts.append(f"<rect x='{px(b.lo) + 1:.1f}' y='{py(b.accuracy):.1f}' width='{bar_w:.1f}' "
                     f"height='{b.accuracy * size:.1f}' fill='{PALETTE[0]}' opacity='0.25'/>"
                     f"<circle cx='{px(b.confidence):.1f}' cy='{py(b.accuracy):.1f}' "
                     f"r='{3 + 5 * (b.n / n_max) ** 0.5:.1f}' fill='{PALETTE[0]}'/>")
    for v in (0, 0.5, 1):
        parts.append(f"<text x='{px(v)}' y='{py(0) + 16}' text-anchor='middle'>{v:g}</text>"
                     f"<text x='{pad - 6}' y='{py(v) + 4}' text-anchor='end'>{v:g}</text>")
    parts.append(f"<text x='{px(0.5)}' y='{height - 2}' text-anchor='middle' fill='#5b6b7c'>confidence</text>"
                 f"<text x='12' y='{py(0.5)}' fill='#5b6b7c' transform='rotate(-90 12 {py(0.5)})' "
                 "text-anchor='middle'>agreement with the LLM</text>")
    alt = f"{title}: " + "; ".join(
        f"confidence {b.confidence:.2f}: agreement {b.accuracy:.2f} ({b.n} sessions)" for b in bins
    )
    return _figure("".join(parts), width, height, alt, f"{title}: held-out sessions in confidence bins; a point "
                   "on the diagonal means the stated confidence is the share the LLM agrees with. Size: sessions.")
