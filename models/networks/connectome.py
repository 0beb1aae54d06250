"""A connectome: which cells exist, their sign (E or I), their populations, which synapses
exist and how strong they start, and which populations take the input and feed the readout.

On disk (`read_connectome`, `write_connectome`) a connectome is a folder of two CSV files with
a header row:

    cells.csv   id, type (E or I), population (optional), input and readout (optional, 0/1:
                the cell receives the task's input / feeds the readout; absent: every cell)
    edges.csv   pre, post, weight (synapse count or weight, > 0; "count" is accepted as the
                column's name), sign (optional: + or -, checked against the pre cell's type)

Other columns are ignored. A bad file ends in one `ConnectomeError` naming the file and row.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Connectome", "ConnectomeError", "read_connectome", "write_connectome",
           "STRUCTURE_KEYS", "CELLS_FILE", "EDGES_FILE"]

CELLS_FILE, EDGES_FILE = "cells.csv", "edges.csv"
STRUCTURE_KEYS = ("cell_id", "cell_inh", "cell_pop", "cell_input", "cell_readout",
                  "edge_pre", "edge_post", "edge_weight")
_FLAGS = {"1": True, "0": False, "true": True, "false": False, "yes": True, "no": False}
_SIGNS = {"+": False, "1": False, "+1": False, "-": True, "-1": True}


class ConnectomeError(ValueError):
    """A connectome that cannot be read or used; the message is one line."""


@dataclass(frozen=True)
class Connectome:
    """Cells (id, inhibitory?, population, input?, readout?) and weighted edges pre -> post
    (cell indices, weights > 0)."""

    ids: np.ndarray
    inhibitory: np.ndarray
    population: np.ndarray
    input: np.ndarray
    readout: np.ndarray
    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray

    @property
    def n(self) -> int:
        return int(self.ids.size)

    @property
    def n_exc(self) -> int:
        return int((~self.inhibitory).sum())

    @property
    def n_inh(self) -> int:
        return int(self.inhibitory.sum())

    def populations(self) -> List[str]:
        """Population names in order of first appearance."""
        return list(dict.fromkeys(self.population.tolist()))

    def ordered(self) -> "Connectome":
        """The same connectome with its cells in network order: E first, then I (stable)."""
        order = np.argsort(self.inhibitory, kind="stable")
        new_index = np.empty_like(order)
        new_index[order] = np.arange(order.size)
        return replace(self, ids=self.ids[order], inhibitory=self.inhibitory[order],
                       population=self.population[order], input=self.input[order],
                       readout=self.readout[order], pre=new_index[self.pre],
                       post=new_index[self.post])

    def with_roles(self, input_pops: Sequence[str], readout_pops: Sequence[str]) -> "Connectome":
        """Input and readout cells set to the members of the populations named (an empty list
        keeps the connectome's own); ConnectomeError for an unknown population."""
        known = self.populations()
        changes = {}
        for role, names in (("input", input_pops), ("readout", readout_pops)):
            unknown = [p for p in names if p not in known]
            if unknown:
                raise ConnectomeError(f"--{role}_pops: unknown population(s) {unknown}; this "
                                      f"connectome has {known}")
            if names:
                changes[role] = np.isin(self.population, list(names))
        return replace(self, **changes)

    def matrix(self) -> np.ndarray:
        """Dense (n, n) weights, pre x post (0: no synapse)."""
        w = np.zeros((self.n, self.n))
        w[self.pre, self.post] = self.weight
        return w

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """The connectome as named arrays (STRUCTURE_KEYS), e.g. for a checkpoint."""
        return dict(zip(STRUCTURE_KEYS, (self.ids, self.inhibitory, self.population,
                                         self.input, self.readout, self.pre, self.post,
                                         self.weight)))

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray]) -> "Connectome":
        """The connectome `to_arrays` gave."""
        kinds = (str, bool, str, bool, bool, np.int64, np.int64, np.float64)
        return cls(*(np.asarray(arrays[k]).astype(t) for k, t in zip(STRUCTURE_KEYS, kinds)))


# ----------------------------------------------------------------------------- reading
def _rows(path: Path, required: Sequence[str]) -> Tuple[List[str], List[Tuple[int, dict]]]:
    """(header, [(line number, row dict)]) of a CSV file; ConnectomeError if it is missing or
    lacks a required column."""
    if not path.is_file():
        raise ConnectomeError(f"{path}: file not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k})
                for row in reader if any((v or "").strip() for v in row.values())]
    missing = [c for c in required if c not in header]
    if missing:
        raise ConnectomeError(f"{path}: missing column(s) {missing} in the header {header}")
    return header, rows


def _flag(value: str, where: str, column: str) -> bool:
    if value.lower() not in _FLAGS:
        raise ConnectomeError(f"{where}: {column} must be 0 or 1, got {value!r}")
    return _FLAGS[value.lower()]


def _read_cells(path: Path) -> Tuple[np.ndarray, ...]:
    header, rows = _rows(path, ("id", "type"))
    if not rows:
        raise ConnectomeError(f"{path}: no cells (an empty network)")
    ids, inh, pop, inp, out = [], [], [], [], []
    seen: Dict[str, int] = {}
    for line, row in rows:
        where = f"{path} line {line}"
        cell, kind = row.get("id", ""), row.get("type", "").upper()
        if not cell:
            raise ConnectomeError(f"{where}: a cell without an id")
        if cell in seen:
            raise ConnectomeError(f"{where}: duplicate cell id {cell!r} (first on line "
                                  f"{seen[cell]})")
        if kind not in ("E", "I"):
            raise ConnectomeError(f"{where}: cell {cell!r} has no type: type must be E or I, "
                                  f"got {row.get('type', '')!r}")
        seen[cell] = line
        ids.append(cell)
        inh.append(kind == "I")
        pop.append(row.get("population", ""))
        inp.append(_flag(row["input"], where, "input") if "input" in header else True)
        out.append(_flag(row["readout"], where, "readout") if "readout" in header else True)
    return (np.array(ids), np.array(inh), np.array(pop), np.array(inp), np.array(out))


def _weight(value: str, where: str) -> float:
    try:
        w = float(value)
    except ValueError:
        raise ConnectomeError(f"{where}: weight must be a number, got {value!r}") from None
    if not np.isfinite(w) or w <= 0:
        raise ConnectomeError(f"{where}: weight must be a positive number (a synapse count or "
                              f"weight; Dale's sign comes from the cell type), got {value!r}")
    return w


def _read_edges(path: Path, index: Dict[str, int],
                inhibitory: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    header, rows = _rows(path, ("pre", "post"))
    column = "weight" if "weight" in header else "count"
    if column not in header:
        raise ConnectomeError(f"{path}: missing column 'weight' (or 'count') in the header "
                              f"{header}")
    if not rows:
        raise ConnectomeError(f"{path}: no edges (an empty network)")
    pre, post, weight = [], [], []
    seen: Dict[Tuple[int, int], int] = {}
    for line, row in rows:
        where = f"{path} line {line}"
        ends = []
        for end in ("pre", "post"):
            if row[end] not in index:
                raise ConnectomeError(f"{where}: unknown {end} id {row[end]!r} (not in "
                                      f"{CELLS_FILE})")
            ends.append(index[row[end]])
        if tuple(ends) in seen:
            raise ConnectomeError(f"{where}: duplicate edge {row['pre']} -> {row['post']} "
                                  f"(first on line {seen[tuple(ends)]})")
        w = _weight(row[column], where)
        sign = row.get("sign", "")
        if sign:
            if sign not in _SIGNS:
                raise ConnectomeError(f"{where}: sign must be + or -, got {sign!r}")
            if _SIGNS[sign] != inhibitory[ends[0]]:
                kind = "inhibitory" if inhibitory[ends[0]] else "excitatory"
                raise ConnectomeError(f"{where}: {kind} cell {row['pre']!r} with an "
                                      f"{'excitatory' if _SIGNS[sign] is False else 'inhibitory'}"
                                      f" sign {sign!r} (Dale's law: a cell has one sign)")
        seen[tuple(ends)] = line
        pre.append(ends[0])
        post.append(ends[1])
        weight.append(w)
    return np.array(pre), np.array(post), np.array(weight, dtype=np.float64)


def _check_usable(conn: Connectome, folder: Path) -> None:
    """ConnectomeError unless the network has E and I cells, input and readout cells."""
    for what, count in (("excitatory", conn.n_exc), ("inhibitory", conn.n_inh),
                        ("input", int(conn.input.sum())), ("readout", int(conn.readout.sum()))):
        if count == 0:
            raise ConnectomeError(f"{folder / CELLS_FILE}: no {what} cell (the network needs "
                                  "E and I cells, and cells for the input and the readout)")


def read_connectome(folder: str | Path) -> Connectome:
    """The connectome in `folder` (cells.csv, edges.csv; module docstring), cells in file
    order; ConnectomeError (one line naming the file and line) if a file is bad."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConnectomeError(f"--connectome {folder}: not a folder (expected one holding "
                              f"{CELLS_FILE} and {EDGES_FILE})")
    ids, inh, pop, inp, out = _read_cells(folder / CELLS_FILE)
    index = {cell: i for i, cell in enumerate(ids.tolist())}
    pre, post, weight = _read_edges(folder / EDGES_FILE, index, inh)
    conn = Connectome(ids, inh, pop, inp, out, pre, post, weight)
    _check_usable(conn, folder)
    return conn


def write_connectome(conn: Connectome, folder: str | Path,
                     extra_cell_columns: Optional[Dict[str, Sequence[str]]] = None) -> Path:
    """Write `conn` into `folder` as cells.csv and edges.csv (weights in full precision, so
    reading them back gives the same network); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    extra = extra_cell_columns or {}
    with open(folder / CELLS_FILE, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "type", "population", "input", "readout", *extra])
        for i in range(conn.n):
            w.writerow([conn.ids[i], "I" if conn.inhibitory[i] else "E", conn.population[i],
                        int(conn.input[i]), int(conn.readout[i]), *(v[i] for v in extra.values())])
    with open(folder / EDGES_FILE, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["pre", "post", "weight", "sign"])
        for a, b, x in zip(conn.pre.tolist(), conn.post.tolist(), conn.weight.tolist()):
            w.writerow([conn.ids[a], conn.ids[b], repr(float(x)),
                        "-" if conn.inhibitory[a] else "+"])
    return folder
