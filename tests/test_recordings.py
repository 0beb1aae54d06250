"""Reading a lab's recordings (utils/fitting/recordings/): NWB current-clamp sweeps paired
with their stimuli in the file's own units, ABF sweeps, the selection flags, and the one-line
refusals: of a file, a cell (its `reason`) or a sweep (left out, with why)."""
import re

import h5py
import numpy as np
import pytest

import neuron_fitting_of_hh_model as hh
from tests.fitting_helpers import write_abf1, write_nwb
from utils.fitting.data import check_recorded_cell
from utils.fitting.recordings import (find_files, left_out_lines, parse_index_list,
                                      read_cells, select_cells)
from utils.run import UserError

T = 50
CUR = np.linspace(0.0, 2.5, 3 * T).reshape(3, T)            # nA
VOLT = -70.0 + np.linspace(0.0, 40.0, 3 * T).reshape(3, T)  # mV


def two_cells(path, **kw):
    return write_nwb(path, {"e0": (CUR, VOLT), "e1": (2 * CUR, VOLT + 5.0)}, **kw)


def refusal(cell) -> str:
    """The one line a cell is refused with (Cell.traces: its reason, or its sweeps')."""
    with pytest.raises(UserError) as err:
        cell.traces()
    assert "\n" not in str(err.value)
    return str(err.value)


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


# --------------------------------------------------------------------------- damaged files

def shorten(path, series: str, n: int) -> None:
    """Keep the first `n` samples of an NWB series (its data's attributes kept)."""
    with h5py.File(path, "r+") as h5:
        group = h5[series]
        attrs, data = dict(group["data"].attrs), group["data"][:n]
        del group["data"]
        group["data"] = data
        group["data"].attrs.update(attrs)


def delete(path, *names: str) -> None:
    with h5py.File(path, "r+") as h5:
        for name in names:
            del h5[name]


def strip_attr(path, attr: str) -> None:
    """Remove `attr` from every series of the file."""
    with h5py.File(path, "r+") as h5:
        for where in ("acquisition", "stimulus/presentation"):
            for group in h5[where].values():
                del group.attrs[attr]


def unpair(path) -> None:
    """No sweep numbers, every series starting at 0 s: nothing says which stimulus goes with
    which response (a file without an intracellular recordings table)."""
    strip_attr(path, "sweep_number")
    with h5py.File(path, "r+") as h5:
        for where in ("acquisition", "stimulus/presentation"):
            for group in h5[where].values():
                group["starting_time"][()] = 0.0


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
