"""Loading users' recordings: layouts accepted and bad files refused with one clear line."""
import numpy as np
import pytest

from utils.fitting.recordings.csv_files import load_recordings, load_spike_times, load_traces
from utils.run import UserError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_plain_rows(tmp_path):
    p = write(tmp_path, "v.csv", "1,2,3\n4,5,6\n")
    np.testing.assert_array_equal(load_traces(p), [[1, 2, 3], [4, 5, 6]])


def test_brian2modelfitting_layout_header_and_index(tmp_path):
    # pandas.DataFrame.to_csv layout: a header of column numbers and a leading index column
    p = write(tmp_path, "i.csv", ",0,1,2,3\n0,0.0,1.5,1.5,0.0\n1,0.0,2.0,2.0,0.0\n")
    np.testing.assert_array_equal(load_traces(p), [[0, 1.5, 1.5, 0], [0, 2, 2, 0]])


def test_first_column_reading_0_to_n_is_data_unless_asked(tmp_path):
    """A first column 0, 1, ..., N-1 may be data (a current starting at 0, 1, 2 nA): it is an
    index only when the header says so, or with --csv_index yes."""
    p = write(tmp_path, "v.csv", "0,-65,-64\n1,-65,-63\n2,-65,-62\n")
    np.testing.assert_array_equal(load_traces(p)[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(load_traces(p, index="yes")[:, 0], [-65, -65, -65])


def test_current_unit_conversion(tmp_path):
    i = write(tmp_path, "i.csv", "0,100,200\n")
    v = write(tmp_path, "v.csv", "-65,-64,-63\n")
    cur, _, _ = load_recordings(str(i), str(v), None, "pA")
    np.testing.assert_allclose(cur, [[0, 0.1, 0.2]])


@pytest.mark.parametrize("text, message", [
    ("1,2,3\n4,5\n", "ragged rows: line 2 has 2 values"),
    ("1,2,abc\n", "'abc' is not a number"),
    ("1,nan,3\n", "NaN or infinite"),
    ("", "holds no data"),
    ("a,b,c\n", "header row but no data"),
])
def test_bad_trace_files(tmp_path, text, message):
    p = write(tmp_path, "bad.csv", text)
    with pytest.raises(UserError, match=message):
        load_traces(p)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_traces(tmp_path / "nope.csv")


def test_shapes_must_agree(tmp_path):
    i = write(tmp_path, "i.csv", "0,1.5,2\n0,1.5,2\n")
    v = write(tmp_path, "v.csv", "-65,-64,-63\n")
    with pytest.raises(UserError, match="differ in shape"):
        load_recordings(str(i), str(v), None)


def test_spike_rows_may_be_ragged_or_empty(tmp_path):
    p = write(tmp_path, "s.csv", "10.5,20,30\n\n5\n")
    trains = load_spike_times(p)
    assert [len(t) for t in trains] == [3, 0, 1]
    np.testing.assert_allclose(trains[0], [10.5, 20, 30])


def test_spike_file_refuses_negative_times(tmp_path):
    p = write(tmp_path, "s.csv", "10,-2\n")
    with pytest.raises(UserError, match="negative"):
        load_spike_times(p)
