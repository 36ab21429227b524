"""Fuzzing of size parsing (backends/units.py): libvirt's whole unit table, round trips, and
hostile numbers, where only InvalidSize may ever come out (never OverflowError/ValueError).

The expected values come from the table in libvirt's documentation, written out here, not
from units.py itself.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from backends import units
from backends.errors import InvalidSize

pytestmark = pytest.mark.fuzz
FUZZ = settings.get_profile("poolkeeper-fuzz")  # registered by conftest.py
MAX = 2**63 - 1  # libvirt caps sizes at LLONG_MAX

# libvirt's unit table (formatstorage.html "unit"): spelling -> bytes, case-insensitive.
TABLE: dict[str, int] = {"b": 1, "byte": 1, "bytes": 1}
for power, letter in enumerate("kmgtpe", start=1):
    TABLE[letter] = 1024**power
    TABLE[letter + "ib"] = 1024**power
    TABLE[letter + "b"] = 1000**power


@st.composite
def any_case(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if f else c for c, f in zip(word, flips, strict=True))


table_units = st.sampled_from(sorted(TABLE)).flatmap(
    lambda u: st.tuples(any_case(u), st.just(TABLE[u])))
sizes = st.integers(0, MAX)
# Anything a file or a command line can hold, surrogates and controls included.
hostile_text = st.text(st.characters(exclude_categories=()), max_size=40)
spaces = st.text(st.sampled_from(" \t"), max_size=3)


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from("0123456789"), min_size=1, max_size=n)


@FUZZ
@given(table_units)
def test_every_libvirt_unit_has_its_multiplier(case: tuple[str, int]) -> None:
    unit, multiplier = case
    assert units.unit_multiplier(unit) == multiplier


@FUZZ
@given(hostile_text)
@example("KiB\n")  # a trailing newline is not part of any unit's name
@example("k\x00")
@example("Ki")
def test_unit_names_outside_the_table_are_refused(unit: str) -> None:
    try:
        multiplier = units.unit_multiplier(unit)
    except InvalidSize as exc:
        assert unit in exc.message  # the message names what was wrong
        return
    assert unit == "" or unit.lower() in TABLE, f"accepted {unit!r} as {multiplier}"
    assert multiplier == TABLE.get(unit.lower(), 1)


@FUZZ
@given(sizes, table_units)
def test_scale_multiplies_or_refuses_above_the_cap(value: int, case: tuple[str, int]) -> None:
    unit, multiplier = case
    if value * multiplier > MAX:
        with pytest.raises(InvalidSize, match="too large"):
            units.scale(str(value), unit)
    else:
        assert units.scale(str(value), unit) == value * multiplier


@FUZZ
@given(sizes, table_units, spaces, spaces, spaces)
def test_parse_size_reads_virsh_arguments(value: int, case: tuple[str, int], lead: str,
                                          mid: str, tail: str) -> None:
    unit, multiplier = case
    text = f"{lead}{value}{mid}{unit}{tail}"
    if value * multiplier > MAX:
        with pytest.raises(InvalidSize):
            units.parse_size(text)
    else:
        assert units.parse_size(text) == value * multiplier


@FUZZ
@given(sizes, table_units)
def test_sizes_round_trip_through_every_unit_they_divide(size: int, case: tuple[str, int]
                                                         ) -> None:
    unit, multiplier = case
    assert units.parse_size(str(size)) == size
    assert units.scale(str(size), "bytes") == size
    if size % multiplier == 0:
        assert units.parse_size(f"{size // multiplier}{unit}") == size
        assert units.scale(str(size // multiplier), unit) == size
    assert units.human(size)  # every size can be shown


@FUZZ
@given(hostile_text, st.none() | hostile_text)
@example("99999999999999999999", "EiB")
@example("9" * 5000, None)  # beyond Python's int() digit limit (ValueError there)
@example("-1", None)
@example("18446744073709551615", "b")  # u64 max
@example("1e3", None)
@example("0x10", None)
@example("\u0663", None)  # ARABIC-INDIC DIGIT THREE: a digit, but not ASCII
@example("1_000", None)
def test_scale_returns_a_size_or_invalid_size(value: str, unit: str | None) -> None:
    try:
        result = units.scale(value, unit)
    except InvalidSize:
        return
    assert isinstance(result, int) and 0 <= result <= MAX
    assert value.strip().isascii() and value.strip().isdigit()


@FUZZ
@given(st.one_of(hostile_text, digits(6000).map(lambda d: d + "G"),
                 st.tuples(spaces, digits(30), spaces, hostile_text).map("".join)))
@example("99999999999999999999 EiB")
@example("9" * 5000)
@example("0" * 5000 + "1K")
@example("10G\n")
def test_parse_size_returns_a_size_or_invalid_size(text: str) -> None:
    try:
        result = units.parse_size(text)
    except InvalidSize:
        return
    assert isinstance(result, int) and 0 <= result <= MAX


@FUZZ
@given(st.integers(0, 30), sizes)
def test_leading_zeros_do_not_change_a_size(zeros: int, size: int) -> None:
    assert units.parse_size("0" * zeros + str(size)) == size


@FUZZ
@given(st.integers(20, 6000), table_units)
def test_numbers_with_too_many_digits_are_too_large(length: int, case: tuple[str, int]
                                                    ) -> None:
    with pytest.raises(InvalidSize, match="too large"):
        units.scale("1" + "0" * (length - 1), case[0])
