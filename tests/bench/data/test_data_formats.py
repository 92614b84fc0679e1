"""The .ts and per-dimension .arff readers on small files written here, good and malformed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bench.data import DataFormatError
from bench.data.formats import read_arff, read_arff_dimensions, read_ts

TS_HEADER = """# a comment
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true walk 'run' 10 2
@data
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ts_variable_length_unequal_channels_missing_values(tmp_path):
    path = write(
        tmp_path,
        "toy.ts",
        TS_HEADER
        + (
            "1.0,2.0,3.0:4.0,5.0:walk\n"  # channel 2 ends early
            "\n"
            "1,?,3,4:5,6,7,8:'run'\n"  # a missing value inside, quoted label
            "0.5:NaN:10\r\n"  # length 1, NaN spelling, CRLF
            "-1e-3,2:3,4:2\n"
        ),
    )
    parsed = read_ts(path)
    assert parsed.values.shape == (4, 2, 4)
    assert parsed.classes == ("walk", "run", "10", "2")
    assert parsed.labels.tolist() == ["walk", "run", "10", "2"]
    np.testing.assert_array_equal(parsed.values[0, 0], [1, 2, 3, np.nan])
    np.testing.assert_array_equal(parsed.values[0, 1], [4, 5, np.nan, np.nan])
    np.testing.assert_array_equal(parsed.values[1, 0], [1, np.nan, 3, 4])
    assert np.isnan(parsed.values[2, 1]).all() and parsed.values[2, 0, 0] == 0.5
    assert parsed.values[3, 0, 0] == -1e-3


ARFF_HEADER = """% comment
@relation toy_channel_0

@attribute c0 numeric
@attribute c1 numeric
@attribute c2 REAL
@attribute target {'a',b}

@data
"""


def test_arff_per_dimension_with_padding(tmp_path):
    d1 = write(tmp_path, "ToyDimension1_TRAIN.arff", ARFF_HEADER + "1,2,?,a\n4,5,6,'b'\n")
    d2 = write(tmp_path, "ToyDimension2_TRAIN.arff", ARFF_HEADER + "7,?,?,a\n1,1,1,b\n")
    one = read_arff(d1)
    assert one.values.shape == (2, 1, 3) and one.classes == ("a", "b")
    both = read_arff_dimensions([d1, d2])
    assert both.values.shape == (2, 2, 3)
    np.testing.assert_array_equal(both.values[0], [[1, 2, np.nan], [7, np.nan, np.nan]])
    assert both.labels.tolist() == ["a", "b"]


def expect_error(path: Path, line: int, words: str, reader=read_ts):
    with pytest.raises(DataFormatError) as info:
        reader(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: expected"), message
    assert re.search(words, message), message
    assert info.value.line == line


@pytest.mark.parametrize(
    "body, line, words",
    [
        # wrong header: data before @data, bad tag values, timestamps, no labels, no @data at all
        ("1,2:3,4:walk\n", 1, "header tag"),
        (TS_HEADER.replace("@dimensions 2", "@dimensions two"), 6, "positive integer"),
        (TS_HEADER.replace("@timeStamps false", "@timeStamps true"), 3, "timestamped"),
        (
            TS_HEADER.replace("@classLabel true walk 'run' 10 2", "@classLabel false"),
            8,
            "classLabel true",
        ),
        (TS_HEADER.replace("@data\n", ""), 8, "'@data'"),
        (TS_HEADER, 9, "at least one series"),
        # unequal dimensions: a row with one dimension too few
        (
            TS_HEADER + "1,2:3,4:walk\n1,2:walk\n",
            11,
            r"2 dimension\(s\) and a class label.*got 2 field",
        ),
        # non-numeric value
        (TS_HEADER + "1,2:3,x4:walk\n", 10, r"number or '\?' as value 2 of dimension 2.*'x4'"),
        # truncated lines: cut after a comma, or before the label
        (TS_HEADER + "1,2:3,4:walk\n1,2:3,", 11, "got 2 field"),
        (TS_HEADER + "1,2:3,4:walk\n1,2:3,4", 11, "got 2 field"),
        # an empty value
        (TS_HEADER + "1,2:3,:walk\n", 10, r"value 2 of dimension 2, got ''"),
        # a label the header does not declare
        (TS_HEADER + "1,2:3,4:swim\n", 10, "class label declared"),
        # equal length declared but not kept
        (
            TS_HEADER.replace("@equalLength false", "@equalLength true\n@seriesLength 2")
            + "1,2:3:walk\n",
            11,
            r"2 values in dimension 2 \(@seriesLength\), got 1",
        ),
    ],
)
def test_malformed_ts(tmp_path, body, line, words):
    expect_error(write(tmp_path, "bad.ts", body), line, words)


@pytest.mark.parametrize(
    "body, line, words",
    [
        ("@attribute c0 numeric\n", 1, "@relation"),  # wrong header
        (ARFF_HEADER.replace("REAL", "string"), 6, "numeric"),  # unsupported type
        (ARFF_HEADER.replace("@data\n", ""), 8, "'@data'"),  # no @data
        (ARFF_HEADER + "1,2,3,a\n1,2,a\n", 11, r"4 comma-separated values.*got 3"),  # truncated row
        (ARFF_HEADER + "1,2,3,a\n1,2,", 11, r"4 comma-separated values"),  # cut mid-row
        (ARFF_HEADER + "1,two,3,a\n", 10, r"value 2 of the row.*'two'"),  # non-numeric
        (ARFF_HEADER + "1,2,3,c\n", 10, "class label from the declared"),  # undeclared label
        (ARFF_HEADER + "{0 1, 3 a}\n", 10, "dense row"),  # sparse ARFF
    ],
)
def test_malformed_arff(tmp_path, body, line, words):
    expect_error(write(tmp_path, "bad.arff", body), line, words, reader=read_arff)


@pytest.mark.parametrize(
    "second_rows, line, words",
    [
        ("1,2,3,a\n", 10, r"2 rows, as many as D1.arff.*got 1 rows"),  # unequal dimensions
        ("1,2,3,a\n4,5,6,a\n", 11, r"label 'b' as in row 2 of D1.arff"),  # rows out of step
    ],
)
def test_arff_dimensions_must_agree(tmp_path, second_rows, line, words):
    first = write(tmp_path, "D1.arff", ARFF_HEADER + "1,2,3,a\n4,5,6,b\n")
    second = write(tmp_path, "D2.arff", ARFF_HEADER + second_rows)
    expect_error(second, line, words, reader=lambda p: read_arff_dimensions([first, p]))
