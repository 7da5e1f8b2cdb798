"""How error messages quote what the client sent: whole when short, cut when long."""

from __future__ import annotations

from modelpilot.errors import QUOTED_CHARACTERS, clipped, quoted


def test_short_text_is_quoted_whole_as_repr_would() -> None:
    assert quoted("iris") == "'iris'"
    assert quoted("a\nb") == "'a\\nb'"
    assert quoted(7) == "7" and quoted([1, "x"]) == "[1, 'x']"
    assert quoted("m" * QUOTED_CHARACTERS) == repr("m" * QUOTED_CHARACTERS)


def test_long_text_is_cut_with_its_length() -> None:
    shown = quoted("m" * 60_000)
    assert shown == repr("m" * QUOTED_CHARACTERS) + "... (60000 characters)"
    assert quoted(list(range(10_000))).endswith("... (58890 characters)")
    assert len(quoted(list(range(10_000)))) < 2 * QUOTED_CHARACTERS


def test_an_integer_past_pythons_limit_of_digits_is_described_not_written() -> None:
    """str() of an integer of more than 4300 digits raises ValueError."""
    assert quoted(10**5000) == "<an integer of 16610 bits>"
    assert quoted(10**3000).endswith("... (3001 characters)")


def test_free_text_is_cut_without_quotes() -> None:
    assert clipped("could not convert") == "could not convert"
    long = "could not convert string to float: '" + "x" * 10_000 + "'"
    assert clipped(long).startswith("could not convert string to float: 'xxx")
    assert clipped(long).endswith("... (10037 characters)") and len(clipped(long)) < 400
