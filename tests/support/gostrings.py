"""An independent Go-style string-literal decoder, the reference the query builders' escaping
is checked against (PromQL and LogQL both parse Go string literals)."""

from __future__ import annotations


def reference_unquote(literal: str) -> tuple[str, int]:
    """Independent Go-style unquoter: decode the string literal at the start of ``literal``.

    Returns the decoded value and the index just past the closing quote, so callers can see
    exactly where the literal ends.
    """
    assert literal[0] == '"', literal
    simple = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
    out = bytearray()
    i = 1
    while True:
        ch = literal[i]
        assert ch != "\n", "raw newline inside a string literal"
        if ch == '"':
            return out.decode("utf-8"), i + 1
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        esc = literal[i + 1]
        if esc in simple:
            out.append(simple[esc])
            i += 2
        elif esc in "uU":
            width = 4 if esc == "u" else 8
            out += chr(int(literal[i + 2 : i + 2 + width], 16)).encode("utf-8")
            i += 2 + width
        elif esc == "x":
            out.append(int(literal[i + 2 : i + 4], 16))
            i += 4
        else:
            out.append(int(literal[i + 1 : i + 4], 8))
            i += 4


def skeleton(query: str) -> str:
    """The query with every string literal emptied: its structure without any values."""
    out, i = [], 0
    while i < len(query):
        if query[i] == '"':
            _, end = reference_unquote(query[i:])
            out.append('""')
            i += end
        else:
            out.append(query[i])
            i += 1
    return "".join(out)
