"""The files --data names, their cells' identifiers, and reading them: a file that cannot be
read is a cell with its reason, so that the other files' cells are still fitted."""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Sequence

from utils.fitting.recordings.abf import read_abf
from utils.fitting.recordings.cells import Cell
from utils.fitting.recordings.nwb import read_nwb
from utils.run import UserError

FORMATS = {".nwb": "nwb", ".abf": "abf"}
READERS = {"nwb": read_nwb, "abf": read_abf}


def find_files(spec: str, data_format: str = "auto") -> list[Path]:
    """The recording files named by --data: a file, a folder (its .nwb and .abf files) or a
    glob pattern; each file's format must be known (by suffix, or --data_format)."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS)
        if data_format != "auto":
            files = [p for p in files if FORMATS[p.suffix.lower()] == data_format]
        where = f"{spec}: the folder holds no"
    elif any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
        where = f"{spec}: the pattern matches no"
    elif path.is_file():
        files = [path]
        where = ""
    else:
        raise UserError(f"{spec}: no such file or folder")
    if not files:
        raise UserError(f"{where} {'.nwb or .abf' if data_format == 'auto' else data_format} "
                        "files")
    for p in files:
        file_format(p, data_format)
    return files


def file_format(path: Path, data_format: str = "auto") -> str:
    """'nwb' or 'abf': --data_format, else the file's suffix."""
    if data_format != "auto":
        return data_format
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"{path}: unknown recording format (suffix {path.suffix or 'none'}); "
                        "name it .nwb or .abf, or give --data_format")
    return FORMATS[path.suffix.lower()]


def file_names(files: Sequence[Path]) -> list[str]:
    """Each file's path relative to the folder that holds them all, with '/' (the name alone
    for the files of one folder): unique, where two folders hold files of the same name."""
    paths = [os.path.abspath(p) for p in files]
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    return [Path(os.path.relpath(p, root)).as_posix() for p in paths]


def read_file(path: Path, name: str, data_format: str = "auto") -> list[Cell]:
    """The cells of one file, their identifiers starting with `name`; a file that cannot be
    read is one cell whose `reason` says why (one line naming the file). Any exception of
    h5py or pyabf counts: a damaged file raises whatever the library meets first."""
    try:
        return READERS[file_format(path, data_format)](path, name)
    except UserError as err:
        return [Cell(name, path, reason=str(err))]
    except Exception as err:  # noqa: BLE001 (the libraries' errors on damaged files vary)
        first = (str(err).splitlines() or [""])[0]
        return [Cell(name, path, reason=f"{path}: cannot be read ({type(err).__name__}: "
                                        f"{first})")]


def read_cells(files: Sequence[Path], data_format: str = "auto") -> list[Cell]:
    """Every cell of every file, in file order; identifiers unique (file_names)."""
    return [c for p, name in zip(files, file_names(files))
            for c in read_file(p, name, data_format)]
