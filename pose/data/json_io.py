"""Reading the JSON files of a dataset (annotations, detections, results) with errors that name them."""

import json
import os
from pathlib import Path
from typing import Any


class DatasetError(ValueError):
    """A dataset file is malformed or inconsistent; the message names the file and what was expected."""


def load_json(path: str | os.PathLike, what: str) -> Any:
    """Parse a JSON file; missing file -> FileNotFoundError, bad JSON -> DatasetError, both naming it
    and ``what`` it should be."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                           f"expected a {what}") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON text ({exc}); expected a {what}") from None


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def is_box(box: Any) -> bool:
    """A list of 4 finite numbers."""
    return isinstance(box, (list, tuple)) and len(box) == 4 and all(is_number(v) for v in box)
