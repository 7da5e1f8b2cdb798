"""A refused label's message shows classes as they are written: letters of any script as
they are (not as JSON's \\uXXXX escapes), control characters escaped."""

from __future__ import annotations

import pytest

from modelpilot.monitoring.label_values import class_label, shown

CLASSES = ["not good", "très bon ✓"]


def test_letters_of_any_script_are_shown_as_they_are() -> None:
    assert shown("très bon ✓") == '"très bon ✓"'
    assert shown("良い") == '"良い"'
    with pytest.raises(ValueError) as refused:
        class_label("tres bon", CLASSES, CLASSES, set(CLASSES))
    assert str(refused.value) == (
        'label "tres bon" is not one of the model\'s classes ("not good", "très bon ✓"); '
        "send one of those"
    )


def test_control_and_format_characters_stay_escaped() -> None:
    assert shown("a\nb") == '"a\\nb"'
    assert shown("x\x1b[31m") == '"x\\u001b[31m"'
    assert shown("x\x85y") == '"x\\u0085y"'  # C1: a line break to some terminals
    assert shown("\u202eevil") == '"\\u202eevil"'  # a right-to-left override
    assert shown("a\u2028b") == '"a\\u2028b"'


def test_a_label_differing_only_by_its_normalization_is_said_to() -> None:
    decomposed = "tre\u0300s bon ✓"  # "e" and a combining grave accent
    with pytest.raises(ValueError) as refused:
        class_label(decomposed, CLASSES, CLASSES, set(CLASSES))
    assert 'it reads as "très bon ✓" but is written with other Unicode characters' in str(
        refused.value
    )
