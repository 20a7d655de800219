"""SPEC data files (the beamline control log): scans, motor positions, counters, ROIs.

A SPEC file is text. A file header (``#F``, ``#E``, ``#D``, ``#O0…`` motor names, ``#o0…``
their mnemonics, ``#J``/``#j`` counter names) is followed by scans::

    #S 54  ascan  th -0.279996 0.720004  200 0.25    scan number and command
    #D Tue Feb 04 12:28:23 2020                       date
    #P0 32.174 0.2200042 90 -5 0 12.6346 …            motor positions, in #O order
    #UIMR5  0 256 0 256 1                             area-detector ROI (34-ID-C)
    #L Theta  H  K  L  Epoch  Seconds …               column labels
    -0.2799992 -0.233292 -0.156863 …                  one line per scan point

Names in ``#O``/``#L`` lines are separated by *two* spaces because a name may contain
one (``pm detector``); values in ``#P`` and data lines by any whitespace. A file may
restart its header part-way (a new ``#F``/``#E``/``#O`` block, e.g. after a motor was
added): each scan takes the motor names in force where it starts.

:func:`read_spec` parses a whole file into :class:`SpecScan` objects; a scan knows its
positions by name (``scan.motor("Delta")`` or by mnemonic ``scan.motor("del")``), its
scanned motor and planned positions (:meth:`SpecScan.planned_positions`, from the
``ascan``/``dscan``/``a2scan``/``lup`` command) and its ROIs (``#UIMR<n> minX sizeX minY
sizeY [bgd]``). Interpreting the motors (units, geometry) is the beamline's business:
see :mod:`autophase.io.raw34idc`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["SpecScan", "read_spec", "read_spec_scan"]

_SPLIT2 = re.compile(r"\s{2,}")


@dataclass(frozen=True)
class SpecScan:
    """One ``#S`` block of a SPEC file.

    number : scan number (``#S n``). command : the scan command, e.g. ``ascan th 0 1 200 0.25``.
    date : the ``#D`` line. motors : motor name → position at the start (``#O``/``#P``).
    mnemonics : motor mnemonic → position (``#o``/``#P``). columns : ``#L`` labels.
    data : (n_points, n_columns) float64 (NaN where a line was short). rois : ``#UIMR<n>``
    key (``"UIMR5"``) → (minX, sizeX, minY, sizeY). header : the raw ``#`` lines.
    source : the file it came from.
    """

    number: int
    command: str
    date: str = ""
    motors: dict = field(default_factory=dict)
    mnemonics: dict = field(default_factory=dict)
    columns: tuple = ()
    data: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    rois: dict = field(default_factory=dict)
    header: tuple = ()
    source: str = ""

    @property
    def kind(self) -> str:
        """The scan type: ``ascan``, ``dscan``, ``a2scan``, ``lup``, ``timescan``…"""
        return self.command.split()[0] if self.command else ""

    def motor(self, name: str) -> float:
        """Position of a motor at the scan start, by name (``Delta``) or mnemonic (``del``)."""
        if name in self.motors:
            return self.motors[name]
        if name in self.mnemonics:
            return self.mnemonics[name]
        low = {k.lower(): v for k, v in self.motors.items()}
        if name.lower() in low:
            return low[name.lower()]
        raise KeyError(f"scan {self.number}: no motor {name!r} (known: {', '.join(self.motors)})")

    def column(self, label: str) -> np.ndarray:
        """One data column by its ``#L`` label (case-insensitive)."""
        for i, c in enumerate(self.columns):
            if c.lower() == label.lower():
                return self.data[:, i]
        raise KeyError(f"scan {self.number}: no column {label!r}")

    @property
    def scanned_motors(self) -> list[str]:
        """Mnemonics of the motors the command moves (``['th']`` for ``ascan th …``)."""
        words = self.command.split()
        if not words:
            return []
        m = re.fullmatch(r"[ad](\d?)scan", words[0])
        if m:
            n = int(m.group(1) or 1)
            return [words[1 + 3 * i] for i in range(n)]
        if words[0] in ("lup", "dscan", "ascan"):
            return [words[1]]
        return []

    def planned_positions(self) -> dict[str, np.ndarray]:
        """Positions the command asked for, per scanned motor: start + k·(stop−start)/n.

        ``ascan m start stop n t`` gives n+1 points; ``dscan``/``lup`` positions are
        relative to the motor's position at the start (``#P``).
        """
        words = self.command.split()
        kind = words[0] if words else ""
        m = re.fullmatch(r"([ad])(\d?)scan", kind) or (re.fullmatch(r"(l)(up)", kind))
        if not m:
            return {}
        relative = kind.startswith("d") or kind == "lup"
        n_mot = int(m.group(2)) if m.group(2) and m.group(2).isdigit() else 1
        try:
            n_int = int(float(words[1 + 3 * n_mot]))
            out = {}
            for i in range(n_mot):
                name, a, b = words[1 + 3 * i], float(words[2 + 3 * i]), float(words[3 + 3 * i])
                pos = a + (b - a) * np.arange(n_int + 1) / max(n_int, 1)
                if relative:
                    pos = pos + self.motor(name)
                out[name] = pos
        except (IndexError, ValueError, KeyError):
            return {}
        return out

    @property
    def count_time(self) -> float | None:
        """Counting time per point (s) from the command's last word, if numeric."""
        try:
            return float(self.command.split()[-1])
        except (IndexError, ValueError):
            return None


def _parse(lines: list[str], source: str) -> dict[int, SpecScan]:
    names: dict[int, list[str]] = {}
    mnems: dict[int, list[str]] = {}
    scans: dict[int, SpecScan] = {}
    cur: dict | None = None

    def finish():
        if cur is None:
            return
        motor_names = [n for k in sorted(cur["O"]) for n in cur["O"][k]]
        motor_mn = [n for k in sorted(cur["o"]) for n in cur["o"][k]]
        pos = [v for k in sorted(cur["P"]) for v in cur["P"][k]]
        rows = cur["rows"]
        ncol = max([len(cur["L"])] + [len(r) for r in rows]) if rows else len(cur["L"])
        data = np.full((len(rows), ncol), np.nan)
        for i, r in enumerate(rows):
            data[i, :len(r)] = r
        scans[cur["n"]] = SpecScan(
            number=cur["n"], command=cur["cmd"], date=cur["D"],
            motors=dict(zip(motor_names, pos)), mnemonics=dict(zip(motor_mn, pos)),
            columns=tuple(cur["L"]), data=data, rois=cur["R"], header=tuple(cur["hdr"]), source=source)

    for line in lines:
        line = line.rstrip("\n")
        if line.startswith("#S "):
            finish()
            parts = line[3:].split(None, 1)
            try:
                n = int(parts[0])
            except (IndexError, ValueError):
                raise InputError(f"{source}: bad scan header line {line!r}") from None
            cur = {"n": n, "cmd": " ".join(parts[1].split()) if len(parts) > 1 else "", "D": "",
                   "O": dict(names), "o": dict(mnems), "P": {}, "L": [], "R": {}, "rows": [], "hdr": [line]}
            continue
        if line.startswith("#O") or line.startswith("#o"):
            m = re.match(r"#([Oo])(\d+)\s?(.*)", line)
            if m:
                target = names if m.group(1) == "O" else mnems
                vals = [v for v in (_SPLIT2.split(m.group(3).strip()) if m.group(1) == "O"
                                    else m.group(3).split()) if v]
                if m.group(2) == "0":
                    target.clear()  # '#O0' starts a header block that redefines the motors
                target[int(m.group(2))] = vals
            continue
        if cur is None:
            continue
        if line.startswith("#"):
            cur["hdr"].append(line)
            if line.startswith("#D "):
                cur["D"] = line[3:].strip()
            elif re.match(r"#P\d+", line):
                m = re.match(r"#P(\d+)\s?(.*)", line)
                try:
                    cur["P"][int(m.group(1))] = [float(v) for v in m.group(2).split()]
                except ValueError:
                    raise InputError(f"{source}: scan {cur['n']}: bad motor positions {line!r}") from None
            elif line.startswith("#L "):
                cur["L"] = [v for v in _SPLIT2.split(line[3:].strip()) if v]
            elif re.match(r"#UIMR\d+\s", line):
                key, *vals = line[1:].split()
                try:
                    cur["R"][key] = tuple(int(float(v)) for v in vals[:4])
                except ValueError:
                    pass
            continue
        if line.strip():
            try:
                cur["rows"].append([float(v) for v in line.split()])
            except ValueError:
                continue  # a stray text line (e.g. an MCA dump) is not a data point
        elif cur is not None and cur["rows"]:
            # a blank line ends the scan; later '#O' lines belong to a new file header
            finish()
            cur = None
    finish()
    return scans


def read_spec(path: str | os.PathLike) -> dict[int, SpecScan]:
    """All scans of a SPEC file, by scan number (a repeated number: the last one wins)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such SPEC file")
    try:
        text = p.read_text(errors="replace")
    except OSError as e:
        raise InputError(f"{p}: unreadable ({e.strerror})") from None
    scans = _parse(text.splitlines(), str(p))
    if not scans:
        raise InputError(f"{p}: no '#S' scan found; not a SPEC data file")
    return scans


def read_spec_scan(path: str | os.PathLike, number: int) -> SpecScan:
    """One scan of a SPEC file; InputError naming the file if it has no such scan."""
    scans = read_spec(path)
    if number not in scans:
        nums = sorted(scans)
        raise InputError(f"{path}: no scan {number} (scans {nums[0]}–{nums[-1]})")
    return scans[number]
