"""Reading a lab's recordings (utils/fitting/recordings/): NWB current-clamp sweeps paired
with their stimuli in the file's own units, ABF sweeps, the selection flags, and the one-line
refusals (damaged files: test_recordings_damaged.py)."""
import re

import h5py
import numpy as np
import pytest

import neuron_fitting_of_hh_model as hh
from tests.fitting_helpers import CUR, T, VOLT, refusal, two_cells, write_abf1
from utils.fitting.recordings import find_files, parse_index_list, read_cells, select_cells
from utils.run import UserError

def file_refusal(path) -> str:
    """The reason of a file that cannot be read: one cell, named by the file, holding it."""
    [cell] = read_cells(find_files(path))
    assert cell.id == path.rsplit("/", 1)[-1] and not cell.sweeps
    return refusal(cell)


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


def write_abf1_with_command(path, voltage_mV, dac_unit, levels, level_inc, durations,
                            current_nA=None) -> str:
    """An ABF1 file whose DAC 0 plays an epoch table (Clampex's stimulus protocol): pyabf's
    writer makes the data (see write_abf1), then the header grows to the 6 KiB of an ABF 1.x
    file (pyabf reads the epoch table at bytes 2296-2668, past the writer's 2 KiB) holding the
    DAC's unit and steps: epoch k at `levels[k] + level_inc[k] * sweep` in `dac_unit` for
    `durations[k]` samples."""
    import struct

    write_abf1(path, current_nA, voltage_mV)
    with open(path, "rb") as fh:
        raw = fh.read()
    header = bytearray(12 * 512)
    header[:2048] = raw[:2048]
    n = len(levels)
    struct.pack_into("i", header, 40, 12)                            # lDataSectionPtr
    struct.pack_into("8s", header, 1346, dac_unit.ljust(8).encode())  # sDACChannelUnit[0]
    struct.pack_into("2h", header, 2296, 1, 0)                       # nWaveformEnable
    struct.pack_into("2h", header, 2300, 1, 0)                       # nWaveformSource: epochs
    struct.pack_into("20h", header, 2308, *([1] * n + [0] * (20 - n)))   # nEpochType: step
    struct.pack_into("20f", header, 2348, *levels, *[0.0] * (20 - n))    # fEpochInitLevel
    struct.pack_into("20f", header, 2428, *level_inc, *[0.0] * (20 - n))  # fEpochLevelInc
    struct.pack_into("20i", header, 2508, *durations, *[0] * (20 - n))   # lEpochInitDuration
    with open(path, "wb") as fh:
        fh.write(bytes(header) + raw[2048:])
    return str(path)


@pytest.mark.parametrize("dac_unit, per_unit", [("pA", 1e3), ("nA", 1.0)])
@pytest.mark.parametrize("with_channel", [False, True])
def test_abf1_stimulus_from_the_command_waveform(tmp_path, dac_unit, per_unit, with_channel):
    """The stimulus is DAC 0's command waveform (the protocol's epoch table), converted to nA
    from the DAC's own unit, sample for sample with the response: an I-V family of -0.05,
    0 and 0.05 nA steps. The 0 nA sweep is a stimulus too (it was refused, or taken from a
    recorded channel while the other sweeps came from the command), and a recorded current
    channel does not replace the command in any sweep."""
    n, hold, step = 1000, 100, 500  # Clampex holds for n // 64 samples before the epochs
    start = n // 64 + hold
    current = np.zeros((3, n))
    for k, level in enumerate((-0.05, 0.0, 0.05)):
        current[k, start:start + step] = level
    voltage = -65.0 + 100.0 * current  # 100 MOhm: +-5 mV during the step
    recorded = 2.0 + current if with_channel else None  # another current, to be ignored
    path = write_abf1_with_command(tmp_path / "iv.abf", voltage, dac_unit,
                                   levels=[0.0, -0.05 * per_unit],
                                   level_inc=[0.0, 0.05 * per_unit], durations=[hold, step],
                                   current_nA=recorded)
    [cell] = read_cells(find_files(path))
    got_current, got_voltage, dt = cell.traces()
    np.testing.assert_allclose(got_current, current, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got_voltage, voltage, atol=0.004)
    assert dt == pytest.approx(0.01)
    for k in (0, 2):  # the steps start and end on the samples where the response steps
        edges = np.flatnonzero(np.abs(np.diff(got_voltage[k])) > 2.0)
        np.testing.assert_array_equal(np.flatnonzero(np.diff(got_current[k])), edges)
        np.testing.assert_array_equal(edges, [start - 1, start + step - 1])


def test_nwb_values_agree_with_pynwbs_reading_offsets_and_volts_included(tmp_path):
    """The file read with h5py gives what pynwb's own objects give: data * conversion +
    offset in each series' unit, the stimulus of each response, electrode and sweep number
    (a response stored in volts with an offset, a stimulus in amperes)."""
    import datetime

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    nwb = NWBFile("offsets", "t", datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    device = nwb.create_device("amp")
    rng = np.random.default_rng(0)
    for e in ("left", "right"):
        electrode = nwb.create_icephys_electrode(name=e, description="patch", device=device)
        for k in range(2):
            common = dict(electrode=electrode, rate=20000.0, sweep_number=np.uint32(7 + k),
                          gain=1.0)
            stim = CurrentClampStimulusSeries(name=f"s_{e}{k}", data=rng.normal(0, 1e-10, T),
                                              **common)
            resp = CurrentClampSeries(name=f"r_{e}{k}", data=rng.normal(0, 100.0, T),
                                      conversion=1e-4, offset=-0.065, **common)
            nwb.add_intracellular_recording(electrode=electrode, response=resp, stimulus=stim)
    path = tmp_path / "off.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    cells = read_cells(find_files(str(path)))
    with NWBHDF5IO(str(path), "r") as io:
        f = io.read()
        for cell in cells:
            electrode = cell.id.split(":")[1]
            assert [s.number for s in cell.sweeps] == [7, 8]
            for k, sweep in enumerate(cell.sweeps):
                resp = f.acquisition[f"r_{electrode}{k}"]
                stim = f.stimulus[f"s_{electrode}{k}"]
                np.testing.assert_allclose(
                    sweep.voltage, 1e3 * (resp.data[:] * resp.conversion + resp.offset),
                    rtol=1e-13)
                np.testing.assert_allclose(sweep.current, 1e9 * stim.data[:] * stim.conversion,
                                           rtol=1e-13)
                assert sweep.dt == pytest.approx(1000.0 / resp.rate)
    assert [c.id for c in cells] == ["off.nwb:left", "off.nwb:right"]


def test_a_hdf5_file_that_is_not_nwb_is_refused(tmp_path):
    with h5py.File(tmp_path / "x.nwb", "w") as h5:
        h5["data"] = np.zeros(3)
    assert file_refusal(str(tmp_path / "x.nwb")).startswith(
        f"{tmp_path / 'x.nwb'}: not a readable NWB file")


@pytest.mark.parametrize("units, message", [
    ("mV", "no stimulus: the command waveform is not a current"),
    ("pA", "channel 0 records a current \\(pA\\): a voltage-clamp recording")])
def test_abf_without_stimulus_or_in_voltage_clamp_is_refused(tmp_path, units, message):
    path = write_abf1(tmp_path / "x.abf", None, np.zeros((3, 1000)) - 65.0, units=units)
    assert re.match(f"{path}: {message}", file_refusal(path))


@pytest.mark.parametrize("kw, message", [
    ({"stimuli": False}, "the current-clamp responses have no stimuli"),
    ({"stimuli": False, "table": False}, "the current-clamp responses have no stimuli"),
    ({"voltage_clamp": True}, "the responses are voltage clamp \\(VoltageClampSeries")])
def test_nwb_refusals_are_one_line_naming_the_file(tmp_path, kw, message):
    path = two_cells(tmp_path / "bad.nwb", **kw)
    assert re.match(f"{path}: {message}", file_refusal(path))


def test_mixed_rates_are_refused_among_the_selected_sweeps_only(tmp_path):
    """Sweep 5 of e1 at 50 kHz, its others at 100 kHz: the cell is refused while sweep 5 is
    selected, and read when --sweeps leaves it out."""
    cells = read_cells(find_files(two_cells(tmp_path / "lab.nwb",
                                            rates_hz={("e1", 2): 50000.0})))
    assert refusal(select_cells(cells, "1")[0]) == (
        "lab.nwb:e1: sweep 5 is sampled every 0.02 ms, sweep 3 every 0.01 ms (mixed rates are "
        "not resampled; leave one out with --sweeps)")
    current, _, dt = select_cells(cells, "1", (3, 4))[0].traces()
    assert current.shape == (2, T) and dt == pytest.approx(0.01)
    assert select_cells(cells, "1", (5,))[0].traces()[2] == pytest.approx(0.02)


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
