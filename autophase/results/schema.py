"""The one record format for every benchmark, evaluation and scaling result.

A :class:`Result` is what a suite measured, typed: headline :class:`Metric` values
(each with its unit, which way is better, its repeats and an optional acceptance
:class:`Target`), :class:`Series` (y over an x axis: ranks, nodes, batch size,
iteration) and :class:`Distribution` (one value per crystal). The report reads these
fields by name and nothing else; the suite's own raw dict may ride along in
``details`` for people (a suite's own summaries may print from it; the report never does).

Identity of a figure across runs is ``(suite, device, metric.name, metric.params)``:
``params`` are what distinguish points of the same quantity. The keys with a meaning
the report knows:

==========  ==============================================================
``impl``    whose code: ``"autophase"`` or a peer (``"cohere"``, ``"pynx"``)
``method``  ``"nn"``, ``"nn+er"``, ``"phasing"``, ``"sphere"``, ...
``source``  data source: ``"simulator"``, ``"generator2"``, ``"scan54"``, ...
``device``  ``"cpu"``/``"cuda"`` where one record holds both
``batch``, ``ranks``, ``nodes``, ``engine``, ``dtype``, ``process`` (``"cold"``/``"warm"``)
==========  ==============================================================

Every record on disk is ``Result.to_dict()`` as JSON (see :mod:`.io`), and validates
against ``result.schema.json`` beside this module, which :func:`json_schema` generates
from these classes (a test keeps the committed file equal to it).

Versioning: ``schema`` is ``"autophase.result/<major>"``. A change that old readers
would misread bumps the major number and comes with a migration in
:mod:`.migrate`; adding an optional field does not.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

__all__ = ["SCHEMA", "Gpu", "Env", "Target", "Metric", "Point", "Series", "Distribution", "Result",
           "from_dict", "json_schema", "SchemaError"]

SCHEMA = "autophase.result/1"

Scalar = Union[str, int, float, bool]
Better = Literal["lower", "higher", "closest-to-1", ""]


class SchemaError(ValueError):
    """A dict that is not a valid record; the message names the field path."""


@dataclass(frozen=True)
class Gpu:
    """The first visible CUDA device (as torch reports it)."""

    name: str
    count: int = 1
    memory_GiB: float | None = None


@dataclass(frozen=True)
class Env:
    """Where a result was measured. ``load_average`` is the 1/5/15-minute load at the
    start of the run (a 2-core machine under load times everything slower)."""

    host: str
    platform: str
    python: str
    cpu_model: str
    cpu_cores: int
    git_sha: str | None = None
    gpu: Gpu | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    load_average: list[float] | None = None


@dataclass(frozen=True)
class Target:
    """An acceptance line for a metric: ``value <op> threshold`` passes.

    ``text`` says where the line comes from (e.g. ``"issue 16: ≤ 1.0 s"``)."""

    op: Literal["<=", ">=", "<", ">"]
    threshold: float
    text: str = ""

    def passes(self, value: float | None) -> bool | None:
        if value is None or not math.isfinite(value):
            return None
        return {"<=": value <= self.threshold, ">=": value >= self.threshold,
                "<": value < self.threshold, ">": value > self.threshold}[self.op]


@dataclass(frozen=True)
class Metric:
    """One headline figure.

    ``value`` is the median of ``samples`` when there were repeats (``None``: not
    measured; ``note`` says why). ``unit`` is SI-like text: ``"s"``, ``"x"`` (a ratio),
    ``"rad"``, ``"1"`` (dimensionless), ``"%"``, ``"patterns/s"``, ``"GFLOP/s"``.
    ``group`` is the table the report puts it in; ``label`` the row's words.
    """

    name: str
    value: float | None
    unit: str
    better: Better = ""
    label: str = ""
    group: str = ""
    params: dict[str, Scalar] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def spread(self) -> tuple[float, float] | None:
        """(min, max) of the repeats, when there were at least two."""
        return (min(self.samples), max(self.samples)) if len(self.samples) >= 2 else None

    def key(self) -> tuple[str, tuple[tuple[str, Scalar], ...]]:
        return (self.name, tuple(sorted(self.params.items())))


@dataclass(frozen=True)
class Point:
    """One point of a series; ``samples`` are its repeats (``y`` their median)."""

    x: float
    y: float | None
    samples: list[float] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Series:
    """``y`` over ``x``. ``kind`` tells the report how to draw it:

    * ``"strong-scaling"``/``"weak-scaling"``: x is ranks or nodes, y a time or a rate;
    * ``"batch"``: x is the batch size, y the time per batch;
    * ``"curve"``: anything else (e.g. error over iterations).
    """

    name: str
    kind: Literal["strong-scaling", "weak-scaling", "batch", "curve"]
    x: str
    x_unit: str
    y: str
    y_unit: str
    points: list[Point]
    better: Better = ""
    label: str = ""
    group: str = ""
    params: dict[str, Scalar] = field(default_factory=dict)

    def key(self) -> tuple[str, tuple[tuple[str, Scalar], ...]]:
        return (self.name, tuple(sorted(self.params.items())))


@dataclass(frozen=True)
class Distribution:
    """One value per item (crystal, pattern), in item order; NaN is written as null."""

    name: str
    unit: str
    values: list[float | None]
    better: Better = ""
    label: str = ""
    group: str = ""
    params: dict[str, Scalar] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Result:
    """One run of one suite on one device."""

    suite: str
    kind: Literal["benchmark", "evaluation", "scaling", "training", "model"]
    created: str
    device: Literal["cpu", "gpu"]
    env: Env
    command: str = ""
    metrics: list[Metric] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    distributions: list[Distribution] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    def metric(self, name: str, **params: Scalar) -> Metric | None:
        """The metric called ``name`` whose params include ``params`` (first match)."""
        for m in self.metrics:
            if m.name == name and all(m.params.get(k) == v for k, v in params.items()):
                return m
        return None

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(dataclasses.asdict(self))


# ------------------------------------------------------------------ (de)serialising
def _to_jsonable(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _to_jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_to_jsonable(v) for v in o]
    return o


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _convert(tp: Any, v: Any, where: str) -> Any:
    """``v`` checked against type ``tp`` (and built into dataclasses); SchemaError names ``where``."""
    if tp is Any:
        return v
    if _is_union(tp):
        errors = []
        for alt in typing.get_args(tp):
            try:
                return _convert(alt, v, where)
            except SchemaError as e:
                errors.append(str(e))
        raise SchemaError(f"{where}: {v!r} matches none of {tp}")
    origin = typing.get_origin(tp)
    if origin is Literal:
        if v in typing.get_args(tp):
            return v
        raise SchemaError(f"{where}: {v!r} is not one of {list(typing.get_args(tp))}")
    if tp is type(None):
        if v is None:
            return None
        raise SchemaError(f"{where}: expected null, got {type(v).__name__}")
    if tp is bool:
        if isinstance(v, bool):
            return v
        raise SchemaError(f"{where}: expected a boolean, got {type(v).__name__}")
    if tp is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        raise SchemaError(f"{where}: expected an integer, got {type(v).__name__}")
    if tp is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
        raise SchemaError(f"{where}: expected a finite number, got {v!r}")
    if tp is str:
        if isinstance(v, str):
            return v
        raise SchemaError(f"{where}: expected a string, got {type(v).__name__}")
    if origin in (list, tuple):
        if not isinstance(v, list):
            raise SchemaError(f"{where}: expected a list, got {type(v).__name__}")
        (item,) = typing.get_args(tp)[:1]
        return [_convert(item, x, f"{where}[{i}]") for i, x in enumerate(v)]
    if origin is dict:
        if not isinstance(v, dict):
            raise SchemaError(f"{where}: expected an object, got {type(v).__name__}")
        _, val = typing.get_args(tp)
        return {str(k): _convert(val, x, f"{where}.{k}") for k, x in v.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, v, where)
    raise SchemaError(f"{where}: unsupported type {tp}")  # pragma: no cover - a schema bug


def from_dict(cls: type, d: Any, where: str = "record") -> Any:
    """Build dataclass ``cls`` from a JSON dict, refusing unknown and missing fields and
    wrong types; the error names the field path (``record.metrics[3].unit``)."""
    if not isinstance(d, dict):
        raise SchemaError(f"{where}: expected an object, got {type(d).__name__}")
    hints = _hints(cls)
    fs = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fs))
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {', '.join(unknown)}")
    kw = {}
    for name, f in fs.items():
        if name not in d:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SchemaError(f"{where}: missing field '{name}'")
            continue
        kw[name] = _convert(hints[name], d[name], f"{where}.{name}")
    if cls is Result and kw.get("schema", SCHEMA) != SCHEMA:
        raise SchemaError(f"{where}.schema: {kw['schema']!r} is not {SCHEMA!r} (migrate it: autophase results migrate)")
    return cls(**kw)


# ------------------------------------------------------------------ JSON Schema
def _schema_of(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if tp is Any:
        return {}
    if _is_union(tp):
        return {"anyOf": [_schema_of(a, defs) for a in typing.get_args(tp)]}
    origin = typing.get_origin(tp)
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    simple = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    if origin in (list, tuple):
        return {"type": "array", "items": _schema_of(typing.get_args(tp)[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_of(typing.get_args(tp)[1], defs)}
    if dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            hints = _hints(tp)
            props, required = {}, []
            for f in dataclasses.fields(tp):
                props[f.name] = _schema_of(hints[f.name], defs)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    required.append(f.name)
            if tp is Result:
                props["schema"] = {"const": SCHEMA}
            defs[name] = {"type": "object", "properties": props, "required": required,
                          "additionalProperties": False,
                          "description": (tp.__doc__ or "").strip().splitlines()[0]}
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"no JSON Schema for {tp}")  # pragma: no cover


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a :class:`Result` record."""
    defs: dict[str, Any] = {}
    ref = _schema_of(Result, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://github.com/autophase/autophase/blob/main/autophase/results/result.schema.json",
            "title": f"autophase result record ({SCHEMA})", **ref, "$defs": defs}
