"""Metric tables as Markdown, as tools/test.py and training logs print them."""

from collections.abc import Mapping, Sequence


def metrics_table(stats: Mapping[str, float], columns: Sequence[str], *, name: str | None = None,
                  decimals: int = 3) -> str:
    """One row of ``stats[c]`` for each column ``c`` (``decimals`` places), with a first column
    'Model' = ``name`` when given. A missing column raises KeyError naming the expected ones."""
    missing = [c for c in columns if c not in stats]
    if missing:
        raise KeyError(f"stats lack {missing}; expected the keys {list(columns)}")
    cells = [f"{stats[c]:.{decimals}f}" for c in columns]
    widths = [max(len(c), len(v)) for c, v in zip(columns, cells)]
    header = [c.center(w) for c, w in zip(columns, widths)]
    values = [v.center(w) for v, w in zip(cells, widths)]
    if name is not None:
        width = max(len("Model"), len(name))
        header, values, widths = ["Model".ljust(width)] + header, [name.ljust(width)] + values, [width] + widths
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      "| " + " | ".join(values) + " |"])
