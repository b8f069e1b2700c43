"""Numbers in protocol text are ASCII digits only (``str.isdigit`` says yes to ``²`` and ``٣``)."""

from __future__ import annotations

import pytest

from flagstaff.numerals import ascii_decimal, ascii_int

NOT_ASCII_NUMBERS = ["²", "¹", "\u2460", "\u0663", "\uff13", "\u0967\u0968", "1²", "12\u0663"]


@pytest.mark.parametrize("text", NOT_ASCII_NUMBERS)
def test_digits_outside_ascii_are_not_numbers(text: str) -> None:
    assert text.isdigit() or not text.isascii()  # what the old parsers trusted
    assert ascii_int(text) is None
    assert ascii_decimal(text) is None


@pytest.mark.parametrize("text", ["", " 1", "1 ", "+1", "-1", "1_000", "0x1", "1.0", "1e3"])
def test_anything_but_plain_digits_is_not_an_integer(text: str) -> None:
    assert ascii_int(text) is None


def test_plain_digits_are_integers_up_to_the_length_asked() -> None:
    assert ascii_int("0") == 0
    assert ascii_int("0042") == 42
    assert ascii_int("9" * 19) == int("9" * 19)
    assert ascii_int("9" * 20) is None
    assert ascii_int("123", max_digits=2) is None
    assert ascii_int(b"17") == 17
    assert ascii_int("²".encode("latin-1")) is None


def test_decimals_are_plain_digits_with_an_optional_fraction() -> None:
    assert ascii_decimal("12") == 12.0
    assert ascii_decimal("1.5") == 1.5
    for text in ["", ".5", "1.", "-1", "1e3", "inf", "nan", "1_0", " 1"]:
        assert ascii_decimal(text) is None, text
