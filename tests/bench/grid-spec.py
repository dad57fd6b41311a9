#!/usr/bin/env python3
"""Writes a path spec: a ROWS x COLS grid of routers (each linked to its right and lower
neighbour) with a forced path of HOPS routers that snakes along the rows from the top-left
corner: row 1 left to right, row 2 right to left, and so on. Between its two ends the grid
offers a path of (rows crossed + columns apart) hops; the spec forces the snake.

    tests/bench/grid-spec.py ROWS COLS HOPS [NAME] > grid.yaml
"""
import sys


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    rows, cols, hops = (int(a) for a in sys.argv[1:4])
    name = sys.argv[4] if len(sys.argv) == 5 else "grid"
    if not (rows >= 1 and cols >= 2 and 2 <= hops <= rows * cols):
        sys.exit("need rows >= 1, cols >= 2 and 2 <= hops <= rows * cols")
    r = lambda i, j: f"g{i}x{j}"
    out = [f"# {rows}x{cols} grid, forced snake of {hops} hops (tests/bench/grid-spec.py)", f"name: {name}", "routers:"]
    # The path's routers first: a router's loopback and ASN follow the order of the list.
    snake = []
    for i in range(1, rows + 1):
        cs = range(1, cols + 1) if i % 2 else range(cols, 0, -1)
        snake.extend(r(i, j) for j in cs)
    path = snake[:hops]
    on_path = set(path)
    names = path + [r(i, j) for i in range(1, rows + 1) for j in range(1, cols + 1) if r(i, j) not in on_path]
    out += [f"  - {{ name: {n} }}" for n in names]
    out.append("links:")
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            if j < cols:
                out.append(f"  - {{ a: {r(i, j)}, b: {r(i, j + 1)} }}")
            if i < rows:
                out.append(f"  - {{ a: {r(i, j)}, b: {r(i + 1, j)} }}")
    out.append("path: [" + ", ".join(path) + "]")
    out.append("hosts: { a: west, b: east }")
    print("\n".join(out))


main()
