"""The one ``key=value`` parser, and the checks that turn user text into a family's config and hyper-parameters.

The CLI (``--set``, ``--hparam``, ``--control``) and the widgets' text fields
both come here, so "false" means False everywhere and a misspelt name gets the
same sentence listing the names that exist.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any, Iterable

from .errors import DataError

_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False,
          "none": None, "null": None}


def parse_value(text: str) -> Any:
    """'3' -> 3, '2e-4' -> 0.0002, 'false' -> False, 'none' -> None, '0/0.9' or '0,0.9' -> (0, 0.9), else the text."""
    text = text.strip()
    if text in ("()", "[]"):
        return ()
    for sep in ("/", ","):
        if sep in text:
            return tuple(parse_value(part) for part in text.split(sep) if part.strip())
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_assignments(items: Iterable[str] | str, what: str = "value") -> dict[str, Any]:
    """``["a=1", "b=x"]`` or the text ``"a=1; b=x"`` -> ``{"a": 1, "b": "x"}``.

    In a single text, items are separated by ';' or by ',' before a new ``key=``
    (so ``betas=0,0.9, lr_g=1e-4`` keeps the tuple together).
    """
    if isinstance(items, str):
        items = _split_text(items)
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise DataError(f"A {what} is written key=value, not '{item.strip()}'.")
        values[key.strip()] = parse_value(raw)
    return values


def _split_text(text: str) -> list[str]:
    parts: list[str] = []
    for chunk in text.replace(";", "\n").splitlines():
        for piece in chunk.split(","):
            if "=" in piece or not parts:
                parts.append(piece)
            else:
                parts[-1] += "," + piece  # a tuple element, not a new item
    return [p.strip() for p in parts if p.strip()]


# -- config ------------------------------------------------------------------------------------------------

def make_config(family, overrides: dict[str, Any]):
    """The family's default config with ``overrides``; unknown names and wrong types in one sentence."""
    fields = {f.name: f for f in dataclasses.fields(family.config_cls)}
    extra = {"preset"} if "preset" in inspect.signature(family.default_config).parameters else set()
    unknown = sorted(set(overrides) - set(fields) - extra)
    if unknown:
        raise DataError(f"The '{family.name}' family has no config value {', '.join(map(repr, unknown))}; "
                        f"it has: {', '.join(sorted(fields))}.")
    hints = typing.get_type_hints(family.config_cls)
    checked = {k: _coerce(k, v, hints.get(k)) if k in fields else v for k, v in overrides.items()}
    try:
        return family.default_config(**checked)
    except DataError:
        raise
    except (TypeError, ValueError) as err:
        raise DataError(f"Invalid config for the '{family.name}' family: {err}.") from None


def as_number(name: str, value: Any) -> float:
    """``value`` as a float if it is a number (not true/false); otherwise one sentence naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"'{name}' takes a number, not {value!r}.")
    return float(value)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise DataError(f"'{name}' is true or false, not {value!r}.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(f"'{name}' takes a whole number, not {value!r}.")
        return value
    if hint is float:
        return as_number(name, value)
    if hint is str:
        return str(value)
    if origin is tuple:
        value = value if isinstance(value, tuple) else (value,)
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis} or {None}
        return tuple(_coerce(name, v, item) for v in value) if item in (int, float, str) else value
    return value


# -- hyper-parameters --------------------------------------------------------------------------------------

def check_hparams(family, values: dict[str, Any]) -> dict[str, Any]:
    """Training hyper-parameters checked against the family's defaults (names and types)."""
    defaults = family.default_hparams()
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise DataError(f"The '{family.name}' family has no hyper-parameter {', '.join(map(repr, unknown))}; "
                        f"it has: {', '.join(sorted(defaults))}.")
    checked = {}
    for key, value in values.items():
        default = defaults[key]
        if default is None:  # "use the config's value": a number or none
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise DataError(f"'{key}' takes a number (or none), not {value!r}.")
            checked[key] = value
        elif isinstance(default, bool):
            checked[key] = _coerce(key, value, bool)
        elif isinstance(default, int):
            checked[key] = _coerce(key, value, int)
        elif isinstance(default, float):
            checked[key] = _coerce(key, value, float)
        elif isinstance(default, (tuple, list)):
            value = () if value is None else value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
                raise DataError(f"'{key}' takes numbers separated by '/', not {value!r}.")
            checked[key] = tuple(value)
        else:  # text; a list written "a,b" arrives as a tuple
            checked[key] = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    if "diff_augment" in checked:
        from ..nn.augment import augment_policy

        augment_policy(checked["diff_augment"])  # an unknown name stops here, before any training
    if "loss" in checked:
        from ..nn.losses import LOSSES, unknown_loss

        if checked["loss"] not in LOSSES:
            raise DataError(unknown_loss(checked["loss"]))
    for key in ("gp_weight", "r1_weight"):
        if key in checked and checked[key] < 0:
            raise DataError(f"'{key}' must be 0 (off) or more, not {checked[key]}.")
    if not 0 <= checked.get("ema_decay", 0.0) < 1:
        raise DataError(f"'ema_decay' is from 0 (off) to below 1, e.g. 0.999; not {checked['ema_decay']}.")
    for key in ("batch_size", "n_critic"):
        if key in checked and checked[key] < 1:
            raise DataError(f"'{key}' must be at least 1, not {checked[key]}.")
    for key in ("lr_g", "lr_d"):
        if key in checked and not checked[key] > 0:
            raise DataError(f"'{key}' must be a positive number, not {checked[key]}.")
    return checked


def describe_hparams(family) -> str:
    """One line: the family's hyper-parameters with their defaults (``train --help``, tooltips)."""
    def show(value):
        if isinstance(value, (tuple, list)):
            return "/".join(str(v) for v in value) or "()"
        return "none" if value is None else str(value)

    return ", ".join(f"{k}={show(v)}" for k, v in family.default_hparams().items())


def check_whole_numbers(config, names: Iterable[str], widths: Iterable[str] = ()) -> None:
    """A config's sizes must be whole numbers >= 1, and its network widths (tuples) 1..4096: one sentence."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"'{name}' must be a whole number of at least 1, not {value!r}.")
    for name in widths:
        values = getattr(config, name)
        if any(isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 4096 for w in values):
            raise DataError(f"'{name}' must be whole numbers from 1 to 4096, not {values!r}.")
