#!/usr/bin/env python3
"""Turns the criterion results of `cargo bench --bench layer` into docs/throughput.svg (throughput
against tasks, one line per variant) and prints the table of ratios as markdown.

Usage: python3 scripts/bench_chart.py [CRITERION_DIR] [OUT_SVG]
CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion, else target/criterion. Python 3 stdlib only.
"""
import json
import math
import os
import sys
from pathlib import Path

VARIANTS = ["bare", "static", "static+head_copy", "meshx", "meshx_no_retry",
            "std_rwlock", "tokio_rwlock", "mutex"]
COLORS = {"bare": "#999999", "static": "#1f77b4", "static+head_copy": "#17becf",
          "meshx": "#d62728", "meshx_no_retry": "#ff7f0e", "std_rwlock": "#2ca02c",
          "tokio_rwlock": "#9467bd", "mutex": "#8c564b"}


def load(root):
    """{(group, function, value): ns per request}"""
    out = {}
    for bench in root.glob("**/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        key = (meta["group_id"], meta.get("function_id"), meta.get("value_str"))
        out[key] = est["mean"]["point_estimate"]
    return out


def mreq(ns):
    return 1e3 / ns  # million requests per second


def chart(data, tasks, path):
    w, h, left, right, top, bottom = 820, 480, 70, 170, 40, 50
    pw, ph = w - left - right, h - top - bottom
    series = {v: [(t, mreq(data[("concurrency", v, str(t))])) for t in tasks
                  if ("concurrency", v, str(t)) in data] for v in VARIANTS}
    ymax = max((y for s in series.values() for _, y in s), default=1)
    ymax = math.ceil(ymax / 2) * 2
    x = lambda i: left + pw * i / (len(tasks) - 1)
    y = lambda v: top + ph * (1 - v / ymax)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="15">Throughput vs tasks (token rotating every 12 ms, '
           f'in-process inner service)</text>']
    for k in range(0, int(ymax) + 1, 2):
        svg.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(k):.1f}" y2="{y(k):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{left - 8}" y="{y(k) + 4:.1f}" text-anchor="end">{k}</text>')
    for i, t in enumerate(tasks):
        svg.append(f'<text x="{x(i):.1f}" y="{top + ph + 18}" text-anchor="middle">{t}</text>')
    svg.append(f'<text x="{left + pw / 2}" y="{h - 10}" text-anchor="middle">tokio tasks (log scale)</text>')
    svg.append(f'<text transform="translate(18,{top + ph / 2}) rotate(-90)" text-anchor="middle">'
               f'million requests / s</text>')
    svg.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    for n, (v, s) in enumerate(series.items()):
        if not s:
            continue
        pts = " ".join(f"{x(tasks.index(t)):.1f},{y(val):.1f}" for t, val in s)
        width = 3 if v.startswith("meshx") else 1.6
        svg.append(f'<polyline points="{pts}" fill="none" stroke="{COLORS[v]}" stroke-width="{width}"/>')
        for t, val in s:
            svg.append(f'<circle cx="{x(tasks.index(t)):.1f}" cy="{y(val):.1f}" r="3" fill="{COLORS[v]}"/>')
        ly = top + 10 + n * 20
        svg.append(f'<line x1="{left + pw + 12}" x2="{left + pw + 36}" y1="{ly}" y2="{ly}" '
                   f'stroke="{COLORS[v]}" stroke-width="{width}"/>')
        svg.append(f'<text x="{left + pw + 42}" y="{ly + 4}">{v}</text>')
    svg.append("</svg>")
    path.write_text("\n".join(svg) + "\n")


def table(data, tasks):
    rows = ["| tasks | meshx / static+head_copy | meshx_no_retry / static | meshx / std_rwlock | "
            "meshx / tokio_rwlock | meshx / mutex | meshx Mreq/s |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    def ratio(group, a, b, t):
        ka, kb = (group, a, t), (group, b, t)
        return data[kb] / data[ka] if ka in data and kb in data else float("nan")
    levels = [("per_request", None, "1 (current-thread)")] + [("concurrency", str(t), str(t)) for t in tasks]
    for group, t, label in levels:
        r = lambda a, b: ratio(group, a, b, t)
        m = data.get((group, "meshx", t), float("nan"))
        rows.append(f"| {label} | {r('meshx', 'static+head_copy'):.2f} | {r('meshx_no_retry', 'static'):.2f} | "
                    f"{r('meshx', 'std_rwlock'):.2f} | {r('meshx', 'tokio_rwlock'):.2f} | "
                    f"{r('meshx', 'mutex'):.2f} | {mreq(m):.2f} |")
    return "\n".join(rows)


def main():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(target) / "criterion"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent.parent / "docs" / "throughput.svg"
    data = load(root)
    if not data:
        sys.exit(f"no criterion results under {root}: run `cargo bench --bench layer` first")
    tasks = sorted({int(k[2]) for k in data if k[0] == "concurrency" and k[2]})
    chart(data, tasks, out)
    print(f"wrote {out}\n")
    print("Throughput ratios (> 1: meshx faster); absolute throughput in million requests/s\n")
    print(table(data, tasks))
    print("\n| variant | " + " | ".join(f"{t} tasks" for t in tasks) + " |")
    print("|---|" + "---:|" * len(tasks))
    for v in VARIANTS:
        cells = [f"{mreq(data[('concurrency', v, str(t))]):.2f}" if ('concurrency', v, str(t)) in data else "-" for t in tasks]
        single = data.get(("per_request", v, None))
        print(f"| {v} | " + " | ".join(cells) + " |" + (f" (one task, current-thread: {mreq(single):.2f})" if single else ""))


if __name__ == "__main__":
    main()
