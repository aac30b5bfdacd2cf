"""How rendered markup becomes blocks: paragraphs split at line breaks within Slack's section limit, and
only the template's own lines read as layout."""

from __future__ import annotations

from messages import blocks as bk


def test_a_long_paragraph_is_split_at_line_breaks_into_full_sections() -> None:
    lines = [f"line {n:03d} " + "x" * 90 for n in range(100)]  # 99 characters each
    blocks = bk.layout("\n".join(lines))
    texts = [b["text"]["text"] for b in blocks]
    assert all(b["type"] == "section" for b in blocks)
    assert [len(t) for t in texts] == [2999, 2999, 2999, 999]  # 30 lines and their 29 breaks per section
    assert "\n".join(texts).split("\n") == lines


def test_a_section_that_is_exactly_full_takes_no_more_and_the_next_starts_at_its_first_line() -> None:
    text = "a" * 2999 + "\n" + "\n\n" + "b" * 10 + "\n"
    assert bk._split(text, 3000) == ["a" * 2999 + "\n", "b" * 10 + "\n"]
    assert bk._split("\n\n" + "c" * 3000 + "\nd", 3000) == ["c" * 3000, "d"]
    assert bk._split("\n\n", 3000) == []
    assert bk._split("\n\nshort\n\n", 3000) == ["short\n\n"]


def test_a_line_longer_than_a_section_is_cut_visibly() -> None:
    [only] = bk._split("word " * 1000, 3000)
    assert len(only) <= 3000 and only.endswith(bk.ELLIPSIS)


def test_values_are_text_wherever_they_are_and_marks_alone_break_paragraphs() -> None:
    markup = f"# Title\nfirst {bk.value('# not a header')}\n{bk.value('')} {bk.value('')}\nsecond\n---\n~ note"
    blocks = bk.layout(markup)
    assert [b["type"] for b in blocks] == ["header", "section", "section", "divider", "context"]
    assert blocks[1]["text"]["text"] == "first # not a header"
    assert blocks[2]["text"]["text"] == "second"
