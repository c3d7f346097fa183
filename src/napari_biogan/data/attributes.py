"""Per-sample attributes: how each is declared, and tables of them (CSV, XLS) matched to files.

An attribute is declared in one short text, so a config, the CLI (``--set``) and a
model card all carry it the same way::

    diagnosis:ordered:CN|MCI|Dementia     an ordered categorical attribute (slider over the classes)
    site:categorical:Guys|HH|IOP          an unordered one (a choice)
    sex:binary:m|f                        two values; the names of 0 and 1 are optional
    age:continuous:20|90                  a real value with its training range (low|high)

Values are kept as one float per attribute and sample: the class index for
binary and categorical attributes, the value itself for continuous ones. Every
bad table (unreadable, no match, mixed types, unknown class) is one
:class:`DataError` sentence. No torch here.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import DataError

BINARY, CATEGORICAL, ORDERED, CONTINUOUS = "binary", "categorical", "ordered", "continuous"
KINDS = (BINARY, CATEGORICAL, ORDERED, CONTINUOUS)
#: how far sliders reach beyond the training range: binary values (the official Fader demo: -9..10),
#: ordered classes (one class beyond each end), continuous ranges (one range width beyond each end)
BINARY_REACH = (-9.0, 10.0)
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


@dataclass(frozen=True)
class AttributeSpec:
    """One declared attribute: ``name:kind[:values]`` (see the module docstring)."""

    name: str
    kind: str
    classes: tuple[str, ...] = ()  # binary: names of 0 and 1; categorical/ordered: class names in order
    low: float = 0.0  # continuous: the training range
    high: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "AttributeSpec":
        """``"age:continuous:20|90"`` -> a spec; ValueError with a plain sentence when malformed."""
        parts = [p.strip() for p in str(text).split(":")]
        if len(parts) < 2 or not parts[0] or len(parts) > 3:
            raise ValueError(f"an attribute is declared name:kind[:values], e.g. 'age:continuous:20|90', "
                             f"not '{text}'")
        name, kind = parts[0], parts[1].lower()
        values = tuple(v.strip() for v in parts[2].split("|") if v.strip()) if len(parts) == 3 else ()
        if kind not in KINDS:
            raise ValueError(f"the attribute '{name}' has the kind '{kind}'; kinds are {', '.join(KINDS)}")
        if kind == BINARY:
            if values and len(values) != 2:
                raise ValueError(f"the binary attribute '{name}' names two values (e.g. m|f), not {len(values)}")
            return cls(name, kind, values or ("0", "1"))
        if kind in (CATEGORICAL, ORDERED):
            if len(values) < 2 or len(set(values)) != len(values):
                raise ValueError(f"the {kind} attribute '{name}' lists at least two different classes, "
                                 f"e.g. '{name}:{kind}:CN|MCI|Dementia'")
            return cls(name, kind, values)
        try:
            low, high = (float(v) for v in values)
        except ValueError:
            raise ValueError(f"the continuous attribute '{name}' gives its range as low|high, "
                             f"e.g. '{name}:continuous:20|90'") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"the range of '{name}' must be two numbers, the lower first, not {low}|{high}")
        return cls(name, kind, (), low, high)

    def text(self) -> str:
        """The declaration text (round trip with :meth:`parse`)."""
        if self.kind == CONTINUOUS:
            return f"{self.name}:{self.kind}:{self.low:g}|{self.high:g}"
        return f"{self.name}:{self.kind}:{'|'.join(self.classes)}"

    @property
    def size(self) -> int:
        """Width of its code and of its prediction head: 2 (binary), K (categorical), 1 (continuous)."""
        return 1 if self.kind == CONTINUOUS else len(self.classes)

    @property
    def is_class(self) -> bool:
        return self.kind != CONTINUOUS

    def training_range(self) -> tuple[float, float]:
        return (self.low, self.high) if self.kind == CONTINUOUS else (0.0, float(len(self.classes) - 1))

    def slider_range(self) -> tuple[float, float]:
        """What a slider spans: beyond the training range (Fader's demo goes to alpha in [-9, 10])."""
        if self.kind == BINARY:
            return BINARY_REACH
        if self.kind in (ORDERED, CATEGORICAL):
            return -1.0, float(len(self.classes))
        width = self.high - self.low
        return self.low - width, self.high + width

    def describe_value(self, value: float) -> str:
        """A value as a reader says it: the nearest class name, or the number."""
        if self.kind == CONTINUOUS:
            return f"{value:g}"
        index = int(round(value))
        name = self.classes[min(max(index, 0), len(self.classes) - 1)]
        return name if abs(value - index) < 1e-6 and 0 <= index < len(self.classes) else f"{value:g} (~{name})"

    # -- converting a column -------------------------------------------------------------------------
    def values(self, cells: Sequence[Any], where: str = "the table") -> np.ndarray:
        """A column (text or numbers) -> float32 values: class indices, or the continuous values."""
        cells = list(cells)
        texts = [_text(c) for c in cells]
        empty = [i for i, t in enumerate(texts) if t == ""]
        if empty:
            raise DataError(f"The column '{self.name}' of {where} has no value in row {empty[0] + 1}"
                            f"{f' (and {len(empty) - 1} more)' if len(empty) > 1 else ''}; fill it in or "
                            "leave those rows out.")
        numbers = [_number(t) for t in texts]
        numeric = [n is not None for n in numbers]
        if self.kind == CONTINUOUS:
            if not all(numeric):
                bad = texts[numeric.index(False)]
                raise DataError(_mixed(self.name, where, bad) if any(numeric) else
                                f"The column '{self.name}' of {where} holds text ('{bad}'), but '{self.name}' "
                                "is declared continuous: it takes numbers only.")
            return np.asarray(numbers, dtype=np.float32)
        lowered = [c.lower() for c in self.classes]
        named = [t.lower() in lowered for t in texts]
        if all(named):
            return np.asarray([lowered.index(t.lower()) for t in texts], dtype=np.float32)
        if self.kind == BINARY and all(t.lower() in _TRUE | _FALSE for t in texts):
            return np.asarray([t.lower() in _TRUE for t in texts], dtype=np.float32)
        if all(numeric):
            values = np.asarray(numbers, dtype=np.float64)
            if np.all(values == np.round(values)) and values.min() >= 0 and values.max() < len(self.classes):
                return values.astype(np.float32)
            raise DataError(f"The column '{self.name}' of {where} holds numbers from {values.min():g} to "
                            f"{values.max():g}; '{self.name}' takes the class indices 0 to "
                            f"{len(self.classes) - 1} or the names {', '.join(self.classes)}.")
        if any(numeric) and not all(numeric):
            raise DataError(_mixed(self.name, where, texts[numeric.index(False)]))
        unknown = sorted({t for t, ok in zip(texts, named) if not ok})
        raise DataError(f"The column '{self.name}' of {where} has the value '{unknown[0]}', which is not one "
                        f"of the declared classes {', '.join(self.classes)}"
                        f"{f' ({len(unknown)} unknown values)' if len(unknown) > 1 else ''}.")


def parse_specs(texts: Sequence[str]) -> tuple[AttributeSpec, ...]:
    """Declarations -> specs; ValueError for a malformed one or a repeated name."""
    specs = tuple(AttributeSpec.parse(t) for t in texts)
    names = [s.name for s in specs]
    if not specs:
        raise ValueError("declare at least one attribute, e.g. attributes=diagnosis:ordered:CN|MCI|Dementia")
    if len(set(names)) != len(names):
        raise ValueError(f"the attribute names repeat ({', '.join(names)})")
    return specs


def _text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and math.isnan(cell):
        return ""
    if isinstance(cell, (float, np.floating)) and float(cell).is_integer():
        return str(int(cell))
    return str(cell).strip()


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _mixed(name: str, where: str, bad: str) -> str:
    return (f"The column '{name}' of {where} mixes numbers and text (e.g. '{bad}'); "
            "give every row the same kind of value.")


# -- tables -------------------------------------------------------------------------------------------------

@dataclass
class Table:
    """A table as text columns (header -> one cell per row)."""

    name: str
    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def column(self, name: str) -> list[Any]:
        found = self.find(name)
        if found is None:
            raise DataError(f"{self.name} has no column '{name}'; its columns: {', '.join(self.columns)}.")
        return self.columns[found]

    def find(self, name: str) -> str | None:
        """The header matching ``name`` (case and spaces ignored), or None."""
        key = _key(name)
        return next((c for c in self.columns if _key(c) == key), None)


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def read_table(path: str | Path) -> Table:
    """A CSV (or, with pandas and its Excel reader installed, an XLS/XLSX) table."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No table at {path}.")
    if path.suffix.lower() in (".xls", ".xlsx"):
        return _read_excel(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            sample = handle.read(4096)
            handle.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            rows = list(csv.reader(handle, dialect))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"Cannot read {path.name} as a CSV table ({err}).") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise DataError(f"{path.name} has no rows below its header.")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header) or not all(header):
        raise DataError(f"{path.name} needs a header row of distinct, non-empty column names.")
    columns = {h: [r[i].strip() if i < len(r) else "" for r in rows[1:]] for i, h in enumerate(header)}
    return Table(path.name, columns)


def _read_excel(path: Path) -> Table:
    try:
        import pandas as pd

        frame = pd.read_excel(path)
    except ImportError:
        engine = "xlrd" if path.suffix.lower() == ".xls" else "openpyxl"
        raise DataError(f"Reading {path.name} needs pandas with {engine} installed; save the table as CSV "
                        "instead.") from None
    except Exception as err:  # pandas raises many types for damaged sheets
        raise DataError(f"Cannot read {path.name} as a spreadsheet ({type(err).__name__}).") from None
    if frame.empty:
        raise DataError(f"{path.name} has no rows below its header.")
    return Table(path.name, {str(c).strip(): frame[c].tolist() for c in frame.columns})


def table_from_columns(columns: dict[str, Any], name: str = "the attributes") -> Table:
    """A table from arrays by column name (a layer's features, an already-read CSV)."""
    lengths = {len(np.atleast_1d(v)) for v in columns.values()}
    if len(lengths) > 1:
        raise DataError(f"The columns of {name} have different lengths.")
    return Table(name, {str(k): list(np.atleast_1d(v).tolist()) for k, v in columns.items()})


def match_rows(table: Table, keys: Sequence[str], id_column: str | None = None) -> list[int | None]:
    """The table row of each file key (a file name or path relative to the data folder), or None.

    Rows are matched by a ``file`` column (name with or without suffix, or a relative
    path), else by ``id_column`` (e.g. the subject id), which matches a file whose
    name or folders contain the id as a whole word. A table none of whose ids match
    any file is refused in one sentence.
    """
    file_column = table.find("file") or table.find("filename")
    column = file_column if id_column is None else table.find(id_column)
    if column is None:
        wanted = id_column or "file"
        raise DataError(f"{table.name} has no '{wanted}' column to match its rows to the images; "
                        f"its columns: {', '.join(table.columns)}.")
    ids = [_text(v) for v in table.columns[column]]
    found: list[int | None] = []
    if column == file_column:
        lookup: dict[str, int] = {}
        for row, value in enumerate(ids):
            for variant in _file_variants(value):
                lookup.setdefault(variant, row)
        for key in keys:
            found.append(next((lookup[v] for v in _file_variants(key) if v in lookup), None))
    else:
        patterns = [(row, re.compile(rf"(?<![A-Za-z0-9]){re.escape(v)}(?![A-Za-z0-9])", re.IGNORECASE))
                    for row, v in enumerate(ids) if v]
        for key in keys:
            found.append(next((row for row, p in patterns if p.search(key)), None))
    if not any(f is not None for f in found):
        example = next((v for v in ids if v), "?")
        raise DataError(f"None of the ids in the '{column}' column of {table.name} (e.g. '{example}') match an "
                        f"image file (e.g. '{keys[0] if keys else 'none found'}').")
    return found


def _file_variants(text: str) -> list[str]:
    """A file reference in the forms a table may use: path, name, name without suffix(es)."""
    text = text.replace("\\", "/").strip().lower()
    name = text.rsplit("/", 1)[-1]
    stem = name[:-7] if name.endswith(".nii.gz") else name.rsplit(".", 1)[0]
    return list(dict.fromkeys([text, name, stem]))


def attribute_matrix(specs: Sequence[AttributeSpec], table: Table, rows: Sequence[int] | None = None) -> np.ndarray:
    """(N, A) float32 values of the declared attributes, from the table's rows (all rows by default)."""
    rows = list(range(len(table))) if rows is None else list(rows)
    columns = []
    for spec in specs:
        cells = table.column(spec.name)
        columns.append(spec.values([cells[r] for r in rows], table.name))
    return np.stack(columns, axis=1).astype(np.float32) if columns else np.zeros((len(rows), 0), np.float32)
