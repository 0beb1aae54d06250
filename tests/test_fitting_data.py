"""Users' recordings: the CSV layout is decided from evidence that cannot be data, no row is
dropped silently, spike files are checked against the traces, implausible units are refused."""
import numpy as np
import pandas as pd
import pytest

from utils.fitting.recordings.csv_files import load_recordings, load_spike_times, load_traces
from utils.run import UserError

CUR = np.array([[0.0, 1.5, 1.5, 0.0], [0.0, 2.0, 2.0, 0.0]])
VOLT = np.array([[-65.0, -60.0, -55.0, -64.0], [-65.0, -58.0, -50.0, -63.0]])


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def frame_csv(tmp_path, name, data, **kw):
    path = tmp_path / name
    pd.DataFrame(data).to_csv(path, **kw)
    return str(path)


@pytest.mark.parametrize("kw", [{"index": False}, {"index": True}, {"index": False, "header": False}])
def test_pandas_layouts_read_back_exactly(tmp_path, kw):
    """to_csv with and without its index and header: the traces come back, no extra trace."""
    i = frame_csv(tmp_path, "i.csv", CUR, **kw)
    v = frame_csv(tmp_path, "v.csv", VOLT, **kw)
    cur, volt, _ = load_recordings(i, v, None)
    np.testing.assert_array_equal(cur, CUR)
    np.testing.assert_array_equal(volt, VOLT)


def test_column_number_header_decided_by_the_other_file(tmp_path):
    """A line 1 reading 0,1,...,T-1 in the current file only: the voltage file (no header)
    has N rows, so it is a header; without that evidence the user is asked."""
    i = frame_csv(tmp_path, "i.csv", CUR, index=False)
    v = frame_csv(tmp_path, "v.csv", VOLT, index=False, header=False)
    cur, _, _ = load_recordings(i, v, None)
    np.testing.assert_array_equal(cur, CUR)
    with pytest.raises(UserError, match="--csv_header yes"):
        load_traces(i)
    np.testing.assert_array_equal(load_traces(i, header="yes"), CUR)


def test_a_ramp_trace_is_kept_when_the_counts_say_it_is_data(tmp_path):
    """A current whose first trace is 0,1,2,3 nA is data when the voltage file has as many
    rows with it as data."""
    ramp = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 2.0, 0.0]])
    i = write(tmp_path, "i.csv", "0,1,2,3\n0,2,2,0\n")
    v = frame_csv(tmp_path, "v.csv", VOLT, index=False, header=False)
    cur, _, _ = load_recordings(i, v, None)
    np.testing.assert_array_equal(cur, ramp)


def test_spike_rows_decide_the_header_of_a_current_file(tmp_path):
    i = frame_csv(tmp_path, "i.csv", CUR, index=False)
    s = write(tmp_path, "s.csv", "1.0\n2.0\n")
    cur, _, spikes = load_recordings(i, None, s, dt=1.0)
    assert cur.shape == (2, 4) and len(spikes) == 2


@pytest.mark.parametrize("text, where", [
    ("1,,3\n4,5,6\n", "line 1, column 2: is empty"),
    ("1,abc,3\n4,5,6\n", "line 1, column 2: 'abc' is not a number"),
    (",1.5,3\n4,5,6\n", "line 1, column 1: is empty"),
    ("4,5,6\n1,,3\n", "line 2, column 2: is empty"),
])
def test_a_bad_cell_in_line_1_is_an_error_not_a_header(tmp_path, text, where):
    with pytest.raises(UserError, match=where):
        load_traces(write(tmp_path, "v.csv", text))


def test_header_words_with_index_label(tmp_path):
    p = write(tmp_path, "v.csv", "Unnamed: 0,t0,t1,t2\n0,-65,-64,-63\n1,-65,-60,-61\n")
    np.testing.assert_array_equal(load_traces(p), [[-65, -64, -63], [-65, -60, -61]])


def test_header_no_reads_line_1_as_data(tmp_path):
    p = write(tmp_path, "v.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(UserError, match="line 1, column 1: 'a' is not a number"):
        load_traces(p, header="no")


def test_shapes_name_both_files(tmp_path):
    i = write(tmp_path, "i.csv", "0,1.5,2\n0,1.5,2\n")
    v = write(tmp_path, "v.csv", "-65,-64,-63\n")
    with pytest.raises(UserError, match=r"i\.csv holds 2 traces x 3 samples, .*v\.csv 1 x 3"):
        load_recordings(i, v, None)


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(UserError, match="is a folder, not a file"):
        load_traces(tmp_path)
    with pytest.raises(UserError, match="is a folder, not a file"):
        load_spike_times(tmp_path)


@pytest.mark.parametrize("text, message", [
    ("10,5\n", "spike times must increase, but 10 is followed by 5"),
    ("10,10\n", "must increase"),
    ("-1,3\n", "negative"),
])
def test_spike_rows_must_increase_and_be_positive(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        load_spike_times(write(tmp_path, "s.csv", text))


def spikes_against(tmp_path, spikes_text, n_samples=1000, dt=0.1):
    i = write(tmp_path, "i.csv", "\n".join(",".join(["0"] * n_samples) for _ in range(2)))
    return load_recordings(i, None, write(tmp_path, "s.csv", spikes_text), dt=dt)


@pytest.mark.parametrize("text, message", [
    ("20,150.5\n30\n", "spike time 150.5 ms is after the end of the trace"),
    ("200,500\n300\n", "look like sample indices"),        # 100 ms trace, 1000 samples
    ("0.02,0.05\n0.03\n", "look like seconds"),             # all below 0.1 = 100 ms / 1000
])
def test_spike_times_outside_the_trace_or_in_another_unit(tmp_path, text, message):
    with pytest.raises(UserError, match=message) as err:
        spikes_against(tmp_path, text)
    assert "spike times are in ms" in str(err.value)


def test_spike_times_inside_the_trace_pass(tmp_path):
    _, _, spikes = spikes_against(tmp_path, "20,50.5\n\n")
    assert [len(s) for s in spikes] == [2, 0]


def test_currents_in_the_wrong_unit(tmp_path):
    i = write(tmp_path, "i.csv", "0,50000,0\n")
    v = write(tmp_path, "v.csv", "-65,-60,-65\n")
    with pytest.raises(UserError, match=r"--current_unit pA"):
        load_recordings(i, v, None)
    cur, _, _ = load_recordings(i, v, None, current_unit="pA")
    np.testing.assert_allclose(cur, [[0, 50, 0]])


@pytest.mark.parametrize("values, message", [("-0.065,-0.06,-0.065", "in volts"),
                                             ("-65000,-6000,-65", "implausible")])
def test_voltages_not_in_mv(tmp_path, values, message):
    i = write(tmp_path, "i.csv", "0,1,0\n")
    with pytest.raises(UserError, match=message):
        load_recordings(i, write(tmp_path, "v.csv", values + "\n"), None)
