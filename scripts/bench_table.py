"""The results table every benchmark script prints at the end."""

from __future__ import annotations


def print_table(rows: list[tuple[str, str]], first: str = "stage") -> None:
    """``rows`` of (name, result) as two aligned columns under a header."""
    width = max(len(first), *(len(name) for name, _ in rows))
    print(f"\n{first:<{width}} | result\n{'-' * width}-|-------")
    for name, value in rows:
        print(f"{name:<{width}} | {value}")
