"""Reading recordings for fitting: a lab's NWB (h5py) and ABF (pyabf) files holding
current-clamp sweeps, one cell per electrode (NWB) or per file (ABF), and a user's CSV traces.

    files.py      the files --data names, their cells' identifiers, reading them
    cells.py      Cell, Sweep: a cell's sweeps, what was left out and why; --cells, --sweeps
    nwb.py        NWB current-clamp series paired with their stimuli
    abf.py        ABF sweeps and their stimulus
    units.py      recorded units to mV and nA
    csv_files.py  traces and spike times from CSV files (--data_current, --data_voltage)

Conventions (docs/NOTES.md):
- A cell's identifier is its file's path relative to the folder holding every file read (the
  name alone for one folder), plus `:electrode` for NWB: unique where two folders hold files
  of the same name.
- NWB: each `CurrentClampSeries` response is paired with the `CurrentClampStimulusSeries`
  of its sweep: through the file's intracellular recordings table for the sweeps it lists,
  the others by electrode and `sweep_number`, else by electrode and starting time; responses
  that cannot be paired make their cell a row with the reason. Values are `data * conversion +
  offset` in the series' own unit (volts or amperes, with SI prefixes), converted to mV and
  nA; the sampling interval is `1 / rate`.
- ABF: sweeps are traces; the response is channel 0 in its own unit (V or mV); the stimulus is
  DAC 0's command waveform (`sweepC`, in the DAC's unit) when it is a current that is not zero
  in every sweep (a 0 pA sweep of a family keeps it), else the first other channel recorded in
  a current unit: one source for all of a file's sweeps. A cell is the file.
- A sweep without a stimulus, or whose stimulus and response differ in rate or length, is
  left out (Cell.left_out, printed by the run); a cell left with no sweep, and a file that
  cannot be read, are cells with their `reason`: rows of the run, the other cells fitted.
  Mixed rates are refused among the selected sweeps only (Cell.traces). h5py and pyabf are
  imported only when such a file is read.
"""
from utils.fitting.recordings.abf import read_abf
from utils.fitting.recordings.cells import (Cell, Sweep, left_out_lines, parse_index_list,
                                            select_cells)
from utils.fitting.recordings.files import FORMATS, file_names, find_files, read_cells
from utils.fitting.recordings.nwb import read_nwb

__all__ = ["Sweep", "Cell", "FORMATS", "parse_index_list", "find_files", "file_names",
           "read_nwb", "read_abf", "read_cells", "select_cells", "left_out_lines"]
