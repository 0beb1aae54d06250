"""Reading a lab's recordings (utils/fitting/recordings.py): NWB current-clamp sweeps paired
with their stimuli in the file's own units, ABF sweeps, the selection flags, and the one-line
refusals."""
import numpy as np
import pytest

import neuron_fitting_of_hh_model as hh
from tests.fitting_helpers import write_abf1, write_nwb
from utils.fitting.recordings import find_files, parse_index_list, read_cells, select_cells
from utils.run import UserError

T = 50
CUR = np.linspace(0.0, 2.5, 3 * T).reshape(3, T)            # nA
VOLT = -70.0 + np.linspace(0.0, 40.0, 3 * T).reshape(3, T)  # mV


def two_cells(path, **kw):
    return write_nwb(path, {"e0": (CUR, VOLT), "e1": (2 * CUR, VOLT + 5.0)}, **kw)


@pytest.mark.parametrize("table", [True, False])
def test_nwb_cells_read_back_in_mv_and_na(tmp_path, table):
    """pA stimuli (conversion 1e-12) and mV responses (conversion 1e-3) come back in nA and
    mV, paired by sweep, one cell per electrode, dt from the rate: through the intracellular
    recordings table or by electrode and sweep number."""
    cells = read_cells(find_files(two_cells(tmp_path / "lab.nwb", table=table)))
    assert [c.id for c in cells] == ["lab.nwb:e0", "lab.nwb:e1"]
    assert [[s.number for s in c.sweeps] for c in cells] == [[0, 1, 2], [3, 4, 5]]
    for cell, (i, v) in zip(cells, ((CUR, VOLT), (2 * CUR, VOLT + 5.0))):
        current, voltage, dt = cell.traces()
        np.testing.assert_allclose(current, i, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(voltage, v, rtol=1e-12)
        assert dt == pytest.approx(0.01, rel=1e-12)


def test_selection_by_cell_and_sweep(tmp_path):
    cells = read_cells(find_files(two_cells(tmp_path / "lab.nwb")))
    picked = select_cells(cells, "1", parse_index_list("3,5"))
    assert [c.id for c in picked] == ["lab.nwb:e1"]
    assert [s.number for s in picked[0].sweeps] == [3, 5]
    assert [c.id for c in select_cells(cells, "lab.nwb:e0")] == ["lab.nwb:e0"]
    assert parse_index_list("0,2,5-7") == (0, 2, 5, 6, 7)
    with pytest.raises(UserError, match="--cells: no cell 'e9'"):
        select_cells(cells, "e9")
    with pytest.raises(UserError, match="--sweeps: no selected cell holds sweep 9"):
        select_cells(cells, "", (0, 9))


def test_abf1_with_a_current_channel_round_trips(tmp_path):
    """pyabf's ABF1 writer: sweeps are traces, channel 0 the response in mV, channel 1 the
    stimulus in nA (to the writer's 16-bit resolution)."""
    n = 1000  # pyabf reads header fields past the writer's 2 KiB header: files need data
    i = np.linspace(0.0, 2.0, 3 * n).reshape(3, n)
    v = -70.0 + np.linspace(0.0, 30.0, 3 * n).reshape(3, n)
    [cell] = read_cells(find_files(write_abf1(tmp_path / "c1.abf", i, v)))
    current, voltage, dt = cell.traces()
    assert cell.id == "c1.abf" and [s.number for s in cell.sweeps] == [0, 1, 2]
    np.testing.assert_allclose(current, i, atol=0.004)
    np.testing.assert_allclose(voltage, v, atol=0.004)
    assert dt == pytest.approx(0.01)


@pytest.mark.parametrize("units, message", [
    ("mV", "no stimulus: the command waveform is not a current"),
    ("pA", "channel 0 records a current \\(pA\\): a voltage-clamp recording")])
def test_abf_without_stimulus_or_in_voltage_clamp_is_refused(tmp_path, units, message):
    path = write_abf1(tmp_path / "x.abf", None, np.zeros((3, 1000)) - 65.0, units=units)
    with pytest.raises(UserError, match=f"x.abf: {message}"):
        read_cells(find_files(path))


@pytest.mark.parametrize("kw, message", [
    ({"stimuli": False}, "the current-clamp responses have no stimuli"),
    ({"stimuli": False, "table": False}, "the current-clamp responses have no stimuli"),
    ({"voltage_clamp": True}, "the responses are voltage clamp \\(VoltageClampSeries"),
    ({"rates_hz": {("e1", 2): 50000.0}}, "e1: sweep 5 is sampled every 0.02 ms, sweep 3 every "
                                          "0.01 ms")])
def test_nwb_refusals_are_one_line_naming_the_file(tmp_path, kw, message):
    path = two_cells(tmp_path / "bad.nwb", **kw)
    with pytest.raises(UserError, match=message) as err:
        read_cells(find_files(path))
    assert str(err.value).startswith(path) and "\n" not in str(err.value)


def test_files_by_folder_glob_and_format(tmp_path):
    two_cells(tmp_path / "a.nwb")
    two_cells(tmp_path / "b.nwb")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_files(str(tmp_path))] == ["a.nwb", "b.nwb"]
    assert [p.name for p in find_files(str(tmp_path / "b*"))] == ["b.nwb"]
    with pytest.raises(UserError, match="notes.txt: unknown recording format"):
        find_files(str(tmp_path / "notes.txt"))
    with pytest.raises(UserError, match="no such file or folder"):
        find_files(str(tmp_path / "none.nwb"))


@pytest.mark.parametrize("flags, message", [
    (["--data_current", "i.csv", "--data_voltage", "v.csv"],
     "--data and --data_current/--data_voltage/--data_spikes are two sources"),
    (["--dt", "0.1"], "--dt: with --data the sampling interval is read from the files")])
def test_data_flag_conflicts_are_refused_before_reading(tmp_path, flags, message):
    with pytest.raises(UserError, match=message):
        hh.main(["--data", str(tmp_path / "lab.nwb"), *flags, "--out_dir",
                 str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_sweeps_without_data_is_refused(tmp_path):
    with pytest.raises(UserError, match="--sweeps select among the recordings of --data"):
        hh.main(["--sweeps", "0,1", "--out_dir", str(tmp_path / "out")])
