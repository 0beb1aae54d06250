"""Damaged lab files read without silent loss (utils/fitting/recordings/): a sweep left out
with a line saying why, a cell or a file that cannot be used kept with its reason, sweeps
paired with their stimuli without sweep numbers, identifiers unique across folders, and the
plausibility thresholds of a recorded cell."""
import h5py
import numpy as np
import pytest

from benchmarks.kit.nwb import write_nwb
from tests.fitting_helpers import (CUR, T, VOLT, delete, refusal, shorten, strip_attr, two_cells,
                                   unpair)
from utils.fitting.recordings.csv_files import check_recorded_cell
from utils.fitting.recordings import find_files, left_out_lines, read_cells, select_cells
from utils.run import UserError


def test_a_sweep_whose_stimulus_and_response_differ_in_length_is_left_out(tmp_path):
    """A 40-sample response of a 50-sample stimulus: that sweep is left out, with a line naming
    file, cell, sweep and series; a cell whose every sweep is so is a cell with its reason."""
    path = two_cells(tmp_path / "len.nwb", table=False)
    shorten(path, "acquisition/resp_e0_1", 40)
    for k in range(3):
        shorten(path, f"acquisition/resp_e1_{k}", 40)
    e0, e1 = read_cells(find_files(path))
    assert [s.number for s in e0.sweeps] == [0, 2]
    np.testing.assert_allclose(e0.traces()[0], CUR[[0, 2]], rtol=1e-12, atol=1e-12)
    assert left_out_lines([e0]) == ["len.nwb:e0: sweep 1 left out: the stimulus stim_e0_1 has "
                                    "50 samples, the response resp_e0_1 40"]
    assert refusal(e1) == ("len.nwb:e1: no usable sweep (sweep 3: the stimulus stim_e1_0 has 50 "
                           "samples, the response resp_e1_0 40; 2 more left out)")


@pytest.mark.parametrize("series, attr, value, why", [
    ("acquisition/resp_e0_1/data", "unit", "furlongs",
     "the response resp_e0_1 is in 'furlongs', not a voltage (volts, V, mV) unit"),
    ("stimulus/presentation/stim_e0_1/starting_time", "rate", 50000.0,
     "the stimulus stim_e0_1 is sampled at 50000 Hz, the response resp_e0_1 at 100000 Hz")])
def test_a_sweep_in_another_unit_or_rate_than_its_stimulus_is_left_out(tmp_path, series, attr,
                                                                        value, why):
    path = two_cells(tmp_path / "odd.nwb", table=False)
    with h5py.File(path, "r+") as h5:
        h5[series].attrs[attr] = value
    e0, e1 = read_cells(find_files(path))
    assert [s.number for s in e0.sweeps] == [0, 2] and len(e1.sweeps) == 3
    assert left_out_lines([e0, e1]) == [f"odd.nwb:e0: sweep 1 left out: {why}"]
    assert left_out_lines([e0, e1], (0, 2)) == []


@pytest.mark.parametrize("table", [True, False])
def test_a_response_without_stimulus_is_a_line_or_a_cell_with_its_reason(tmp_path, table):
    """One sweep of e0 without its stimulus: left out with a line; e1 without any: a cell
    with its reason, not a cell gone (the table's rows, or the stimuli removed)."""
    path = two_cells(tmp_path / "nostim.nwb", table=table)
    with h5py.File(path, "r+") as h5:
        if table:  # the rows reference no stimulus: index -1
            stimuli = h5["general/intracellular_ephys/intracellular_recordings/stimuli/"
                         "stimulus"]
            rows = stimuli[()]
            for k in (1, 3, 4, 5):
                rows[k]["idx_start"] = -1
            stimuli[...] = rows
    if not table:
        delete(path, "stimulus/presentation/stim_e0_1",
               *(f"stimulus/presentation/stim_e1_{k}" for k in range(3)))
    e0, e1 = read_cells(find_files(path))
    assert [s.number for s in e0.sweeps] == [0, 2] and e1.sweeps == []
    assert left_out_lines([e0, e1]) == [
        "nostim.nwb:e0: sweep 1 left out: the response resp_e0_1 has no stimulus (no "
        "CurrentClampStimulusSeries of its sweep)"]
    assert refusal(e1).startswith("nostim.nwb:e1: no usable sweep (sweep 3: the response "
                                  "resp_e1_0 has no stimulus")
    with pytest.raises(UserError, match="no selected cell holds sweep 1 .*; nostim.nwb:e0 left "
                                        "sweep 1 out: the response resp_e0_1 has no stimulus"):
        select_cells([e0, e1], "", (0, 1))


@pytest.mark.parametrize("table", [True, False])
def test_sweeps_without_numbers_get_their_own_stimuli(tmp_path, table):
    """No sweep_number: each response still gets its own stimulus (it got the electrode's
    last one), through the table's rows or the series' starting times; numbered in order."""
    path = two_cells(tmp_path / "nonum.nwb", table=table)
    strip_attr(path, "sweep_number")
    cells = read_cells(find_files(path))
    assert [[s.number for s in c.sweeps] for c in cells] == [[0, 1, 2], [0, 1, 2]]
    for cell, current in zip(cells, (CUR, 2 * CUR)):
        np.testing.assert_allclose(cell.traces()[0], current, rtol=1e-12, atol=1e-12)


def test_sweeps_that_cannot_be_paired_make_a_cell_with_its_reason(tmp_path):
    """No sweep numbers, no table, the same starting time everywhere: which stimulus belongs
    to which response is unknown, said in the cell's reason."""
    path = two_cells(tmp_path / "unpaired.nwb", table=False)
    unpair(path)
    cells = read_cells(find_files(path))
    assert [c.id for c in cells] == ["unpaired.nwb:e0", "unpaired.nwb:e1"]
    assert refusal(cells[0]) == (
        "unpaired.nwb:e0: 3 responses and 3 stimuli without distinct sweep numbers or "
        "starting times: which stimulus each response got is unknown (an intracellular "
        "recordings table would say)")


def test_the_same_file_name_in_two_folders_gives_two_ids(tmp_path):
    """a/lab.nwb and b/lab.nwb: identifiers relative to the folder holding both, every cell
    kept and selectable; the files of one folder keep their names alone."""
    for sub, scale in (("a", 1.0), ("b", 2.0)):
        (tmp_path / sub).mkdir()
        write_nwb(tmp_path / sub / "lab.nwb", {"e0": (scale * CUR, VOLT)})
    cells = read_cells(find_files(str(tmp_path / "*" / "lab.nwb")))
    assert [c.id for c in cells] == ["a/lab.nwb:e0", "b/lab.nwb:e0"]
    [b] = select_cells(cells, "b/lab.nwb:e0")
    np.testing.assert_allclose(b.traces()[0], 2 * CUR, rtol=1e-12, atol=1e-12)
    assert [c.id for c in read_cells(find_files(str(tmp_path / "a")))] == ["lab.nwb:e0"]


def damage_header(path, series: str) -> None:
    """Overwrite the HDF5 object header of a series' data: h5py raises on opening it."""
    with h5py.File(path, "r") as h5:
        address = h5py.h5o.get_info(h5[series]["data"].id).addr
    with open(path, "r+b") as fh:
        fh.seek(address)
        fh.write(b"\xff" * 64)


def test_an_unreadable_file_is_a_cell_with_its_reason_beside_the_good_ones(tmp_path):
    """A file of garbage, an NWB file cut in half and one whose series is damaged inside
    (h5py raises a KeyError there): each one cell holding why, named by the file; the good
    file's cells read as ever."""
    two_cells(tmp_path / "good.nwb")
    (tmp_path / "bad.nwb").write_bytes(b"not hdf5")
    whole = (tmp_path / "good.nwb").read_bytes()
    (tmp_path / "cut.nwb").write_bytes(whole[:len(whole) // 2])
    damage_header(two_cells(tmp_path / "damaged.nwb", table=False), "acquisition/resp_e0_1")
    cells = read_cells(find_files(str(tmp_path)))
    assert [c.id for c in cells] == ["bad.nwb", "cut.nwb", "damaged.nwb", "good.nwb:e0",
                                     "good.nwb:e1"]
    assert refusal(cells[0]).startswith(f"{tmp_path / 'bad.nwb'}: not a readable NWB file (")
    assert refusal(cells[1]).startswith(f"{tmp_path / 'cut.nwb'}: not a readable NWB file (")
    assert refusal(cells[2]).startswith(f"{tmp_path / 'damaged.nwb'}: cannot be read "
                                        "(KeyError: ")
    assert [s.number for s in cells[4].sweeps] == [3, 4, 5]


@pytest.mark.parametrize("top_nA, span_mV, refused", [
    (0.0, 10.0, None),                    # no stimulus at all: spontaneous activity
    (0.002, 10.0, None),                  # a 2 pA step
    (0.0005, 10.0, "the stimulus never exceeds 0.0005 nA, implausibly small \\(below 1 pA\\)"),
    (1e-12, 10.0, "the stimulus never exceeds 1e-12 nA"),   # pA read as A, then scaled again
    (0.1, 0.6, None),
    (0.1, 0.4, "the response is flat \\(it spans 0.4 mV over the selected sweeps, below 0.5 "
               "mV\\)")])
def test_plausibility_of_a_recorded_cell(top_nA, span_mV, refused):
    """The thresholds of check_recorded_cell, on both sides (docs/NOTES.md)."""
    current = np.zeros((2, T))
    current[1, 10:20] = -top_nA
    voltage = np.full((2, T), -65.0)
    voltage[0, 5] += span_mV
    if refused is None:
        check_recorded_cell("c", current, voltage)
    else:
        with pytest.raises(UserError, match=f"^c: {refused}"):
            check_recorded_cell("c", current, voltage)


def test_responses_outside_the_table_are_read_too(tmp_path):
    """A file pairing its sweeps through the intracellular recordings table, plus a sweep of
    e0 stored beside it (response and stimulus of sweep 9) and a response of e1 without a
    stimulus: the first read with e0's table sweeps, the second a line."""
    path = two_cells(tmp_path / "mixed.nwb")
    with h5py.File(path, "r+") as h5:
        for src, dst in (("acquisition/resp_e0_0", "acquisition/late_e0"),
                         ("stimulus/presentation/stim_e0_0", "stimulus/presentation/late_s"),
                         ("acquisition/resp_e1_0", "acquisition/late_e1")):
            h5.copy(h5[src], dst)
            h5[dst].attrs["sweep_number"] = 9
    e0, e1 = read_cells(find_files(path))
    assert [s.number for s in e0.sweeps] == [0, 1, 2, 9]
    np.testing.assert_allclose(e0.traces()[0], CUR[[0, 1, 2, 0]], rtol=1e-12, atol=1e-12)
    assert [s.number for s in e1.sweeps] == [3, 4, 5]
    assert left_out_lines([e0, e1]) == ["mixed.nwb:e1: sweep 9 left out: the response late_e1 "
                                        "has no stimulus (no CurrentClampStimulusSeries of its "
                                        "sweep)"]
