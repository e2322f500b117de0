"""The log frame: the one shape every log source produces.

A pandas DataFrame with exactly these columns, in this order:

``timestamp``  ``datetime64[ns, UTC]``
``labels``     a ``dict`` per row (stream labels; may be empty). Rows of one stream share one
               dict object, so treat it as read-only.
``line``       ``str``, the raw log line

Timestamps found in a line (:func:`parse_timestamps`): RFC3339/ISO8601 (``T`` or space, ``.``
or ``,`` fractions, ``Z``/offset/none = UTC), ``YYYY/MM/DD HH:MM:SS`` (nginx error log, Go's
``log``), Apache/nginx access log ``[15/Jan/2024:10:00:00 +0000]``, syslog ``Jan 15 10:00:00``
and glog ``I0115 10:00:00.123456`` (year taken from ``default_time``, else the current year),
JSON fields ``ts``/``time``/``timestamp``/``@timestamp``/``datetime`` (string or epoch number),
logfmt ``ts=``/``time=``/``timestamp=``; epoch numbers are seconds, ms, us or ns by magnitude.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from aiops.errors import InvalidInput
from aiops.logs.shapes import encode_lines, flat_line, shape_scan

__all__ = [
    "COLUMNS",
    "FORMATS",
    "empty_frame",
    "from_lines",
    "make_frame",
    "parse_timestamps",
    "validate_frame",
]

COLUMNS = ("timestamp", "labels", "line")
FORMATS = ("auto", "text", "json", "logfmt")
_NAT = np.iinfo(np.int64).min

_MONTH = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_LEADING = re.compile(
    r"\s*\[?(?:"
    r"(?P<iso>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d{1,9})?"
    r"(?:\s?(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)(?![\w:]))?)"
    r"|(?P<slash>\d{4}/\d{2}/\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?)"
    r"|(?P<clf>\d{2}/" + _MONTH + r"/\d{4}:\d{2}:\d{2}:\d{2}(?: [+-]\d{4})?)"
    r"|(?P<syslog>" + _MONTH + r" [ \d]\d \d{2}:\d{2}:\d{2})"
    r"|(?P<glog>[IWEF]\d{4} \d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)"
    r"|(?P<epoch>\d{10}(?:\.\d{1,9})?|\d{13}|\d{16}|\d{19})(?=[\s,;\]|])"
    r")"
)
_JSON_TS = re.compile(
    r'"(?:@timestamp|timestamp|ts|time|datetime|date|eventTime)"\s*:\s*'
    r'(?:"([^"]{6,40})"|(\d{9,19}(?:\.\d+)?))'
)
_LOGFMT_TS = re.compile(r'(?:^|\s)(?:ts|time|timestamp|datetime)=(?:"([^"]{6,40})"|(\S{6,40}))')
_CLF_ANY = re.compile(r"\[(\d{2}/" + _MONTH + r"/\d{4}:\d{2}:\d{2}:\d{2}(?: [+-]\d{4})?)\]")
_ISO_ANY = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?"
)
_EPOCH = re.compile(r"^\d{9,19}(?:\.\d+)?$")
_ISO_VALUE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _utc_ns(value: Any) -> int | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"not a timestamp: {value!r}", field="default_time") from exc
    if ts is pd.NaT:
        return None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.tz_convert("UTC").as_unit("ns").value)


def _epoch_ns(text: str) -> int:
    if "." in text:
        whole, frac = text.split(".", 1)
    else:
        whole, frac = text, ""
    digits = len(whole)
    if digits <= 11:  # seconds
        return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])
    if digits <= 14:  # milliseconds
        return int(whole) * 1_000_000 + int((frac + "000000")[:6])
    if digits <= 17:  # microseconds
        return int(whole) * 1_000 + int((frac + "000")[:3])
    return int(whole)


def _find(line: str, fmt: str, year: int) -> tuple[str, int, int] | None:
    """Where the line's timestamp is: ``(kind, start, end)`` (character offsets) or None.

    Kinds: ``iso``, ``slash``, ``clf``, ``syslog``, ``glog``, ``epoch``.
    """
    if fmt in ("auto", "json") and line[:1] == "{":
        m = _JSON_TS.search(line)
        if m:
            g = 1 if m.group(1) is not None else 2
            return ("epoch" if _EPOCH.match(m.group(g)) else "iso"), m.start(g), m.end(g)
    if fmt in ("auto", "text"):
        m = _LEADING.match(line)
        if m:
            kind = m.lastgroup or "iso"
            return kind, m.start(kind), m.end(kind)
    if fmt in ("auto", "logfmt") and "=" in line:
        m = _LOGFMT_TS.search(line)
        if m:
            g = 1 if m.group(1) is not None else 2
            return ("epoch" if _EPOCH.match(m.group(g)) else "iso"), m.start(g), m.end(g)
    if fmt in ("auto", "text"):
        if "[" in line:
            m = _CLF_ANY.search(line)
            if m:
                return "clf", m.start(1), m.end(1)
        m = _ISO_ANY.search(line)
        if m:
            return "iso", m.start(), m.end()
    return None


def _iso_text(kind: str, text: str, year: int) -> str:
    if kind == "slash":
        return text.replace("/", "-", 2)
    if kind == "syslog":
        return f"{year} {' '.join(text.split())}"
    if kind == "glog":
        return f"{year}-{text[1:3]}-{text[3:5]} {text[6:]}"
    text = text.replace(",", ".") if "," in text else text
    if text.endswith(("UTC", "GMT")):
        text = text[:-3].rstrip() + "Z"
    return text


def _parse_per_line(lines: Sequence[str], fmt: str, year: int) -> np.ndarray:
    """The reference parser: one regex search per line, then vectorised pandas parsing."""
    n = len(lines)
    out = np.full(n, _NAT, np.int64)
    iso_idx: list[int] = []
    iso_val: list[str] = []
    syslog_idx: list[int] = []
    syslog_val: list[str] = []
    clf_idx: list[int] = []
    clf_val: list[str] = []
    for i, line in enumerate(lines):
        found = _find(line, fmt, year)
        if found is None:
            continue
        kind, a, b = found
        text = line[a:b]
        if kind == "epoch":
            out[i] = _epoch_ns(text)
        elif kind == "clf":
            clf_idx.append(i)
            clf_val.append(text)
        elif kind == "syslog":
            syslog_idx.append(i)
            syslog_val.append(_iso_text(kind, text, year))
        else:
            iso_idx.append(i)
            iso_val.append(_iso_text(kind, text, year))
    if iso_idx:
        parsed = pd.to_datetime(iso_val, format="ISO8601", utc=True, errors="coerce")
        out[np.asarray(iso_idx)] = parsed.as_unit("ns").asi8
    if syslog_idx:
        parsed = pd.to_datetime(syslog_val, format="%Y %b %d %H:%M:%S", utc=True, errors="coerce")
        out[np.asarray(syslog_idx)] = parsed.as_unit("ns").asi8
    if clf_idx:
        parsed = pd.to_datetime(clf_val, format="%d/%b/%Y:%H:%M:%S %z", utc=True, errors="coerce")
        values = parsed.as_unit("ns").asi8
        missing = values == _NAT
        if missing.any():  # no offset: UTC
            alt = (
                pd.to_datetime(clf_val, format="%d/%b/%Y:%H:%M:%S", utc=True, errors="coerce")
                .as_unit("ns")
                .asi8
            )
            values = np.where(missing, alt, values)
        out[np.asarray(clf_idx)] = values
    return out


# -- the vectorised path: one timestamp "spec" per line shape ---------------------------------
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    )
}
_COMPONENTS = {
    "iso": re.compile(
        r"(?P<Y>\d{4})-(?P<M>\d{1,2})-(?P<D>\d{1,2})[T ](?P<h>\d{1,2}):(?P<m>\d{2})"
        r"(?::(?P<s>\d{2}))?(?:[.,](?P<f>\d{1,9}))?\s?"
        r"(?:(?P<z>Z|UTC|GMT)|(?P<sign>[+-])(?P<tzh>\d{2})(?::?(?P<tzm>\d{2}))?)?"
    ),
    "slash": re.compile(
        r"(?P<Y>\d{4})/(?P<M>\d{2})/(?P<D>\d{2})[ T](?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
        r"(?:[.,](?P<f>\d{1,9}))?"
    ),
    "clf": re.compile(
        r"(?P<D>\d{2})/(?P<Mon>[A-Z][a-z]{2})/(?P<Y>\d{4}):(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
        r"(?: (?P<sign>[+-])(?P<tzh>\d{2})(?P<tzm>\d{2}))?"
    ),
    "syslog": re.compile(
        r"(?P<Mon>[A-Z][a-z]{2}) +(?P<D>\d{1,2}) (?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
    ),
    "glog": re.compile(
        r"[IWEF](?P<M>\d{2})(?P<D>\d{2}) (?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
        r"(?:\.(?P<f>\d{1,9}))?"
    ),
    "epoch": re.compile(r"(?P<e>\d{9,19})(?:\.(?P<f>\d+))?"),
}
_CIVIL = ("Y", "M", "D", "h", "m", "s", "f", "tzh", "tzm")
_FALLBACK = "fallback"
# A component: (ordinal of its digit run, divisor, modulus, run length) or (-1, constant).
_Spec = tuple[str, int, dict[str, tuple[int, ...]]]


def _spec(line: str, fmt: str, year: int) -> _Spec | str | None:
    """How to read this shape's timestamp from digit runs (None: no timestamp)."""
    flat = flat_line(line)
    found = _find(flat, fmt, year)
    if found is None:
        return None
    kind, a, b = found
    m = _COMPONENTS[kind].fullmatch(flat, a, b)
    if m is None:
        return _FALLBACK
    data = flat.encode("utf-8", "replace")
    runs = shape_scan(data, 1, runs=True)
    assert runs.run_starts is not None and runs.run_ends is not None
    starts, ends = runs.run_starts.tolist(), runs.run_ends.tolist()
    comps: dict[str, tuple[int, ...]] = {}
    for name, value in m.groupdict().items():
        if value is None:
            continue
        if name == "Mon":
            comps["M"] = (-1, _MONTHS[value])
            continue
        if name == "sign":
            comps["sign"] = (-1, -1 if value == "-" else 1)
            continue
        if name == "z":
            continue
        gs = len(flat[: m.start(name)].encode("utf-8", "replace"))
        ge = gs + len(value)
        for k, (rs, re_) in enumerate(zip(starts, ends)):
            if rs <= gs and ge <= re_:
                if (rs, re_) == (gs, ge):
                    comps[name] = (k, 1, 0, 0)
                else:
                    comps[name] = (k, 10 ** (re_ - ge), 10 ** (ge - gs), re_ - rs)
                break
        else:
            return _FALLBACK
    if kind in ("syslog", "glog"):
        comps["Y"] = (-1, year)
    return ("epoch" if kind == "epoch" else "civil"), len(starts), comps


def _int_runs(a: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(starts.size, np.int64)
    if starts.size == 0:
        return out
    for k in range(min(int(lengths.max()), 19)):
        live = np.flatnonzero(lengths > k)
        out[live] = out[live] * 10 + (a[starts[live] + k].astype(np.int64) - 48)
    return out


_DAYS_IN_MONTH = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = np.where(m > 2, m - 3, m + 9)
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_CHUNK = 65_536


def _parse_vectorised(lines: Sequence[str], fmt: str, year: int) -> np.ndarray:
    out = np.empty(len(lines), np.int64)
    cache: dict[bytes, Any] = {}
    for start in range(0, len(lines), _CHUNK):
        chunk = lines[start : start + _CHUNK]
        out[start : start + len(chunk)] = _parse_chunk(chunk, fmt, year, cache)
        if len(cache) > 100_000:
            cache.clear()
    return out


def _parse_chunk(lines: Sequence[str], fmt: str, year: int, cache: dict[bytes, Any]) -> np.ndarray:
    n = len(lines)
    out = np.full(n, _NAT, np.int64)
    blob = encode_lines(lines)
    scan = shape_scan(blob, n, runs=True)
    assert (
        scan.run_starts is not None
        and scan.run_ends is not None
        and scan.line_first_run is not None
    )
    codes, uniques = pd.factorize(np.array(scan.keys, dtype=object))
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    bounds = np.zeros(len(uniques) + 1, np.int64)
    np.cumsum(counts, out=bounds[1:])
    first = order[bounds[:-1]]
    specs = []
    for u, key in enumerate(uniques):
        spec = cache.get(key, cache)
        if spec is cache:
            spec = cache[key] = _spec(lines[int(first[u])], fmt, year)
        specs.append(spec)
    a = np.frombuffer(blob, np.uint8)
    first_run = scan.line_first_run

    def expand(us: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Lines of the given shapes, and each line's position in ``us``."""
        ua = np.asarray(us, np.int64)
        lengths = counts[ua]
        total = int(lengths.sum())
        base = np.zeros(ua.size, np.int64)
        np.cumsum(lengths[:-1], out=base[1:])
        offset = np.arange(total, dtype=np.int64) - np.repeat(base, lengths)
        return order[np.repeat(bounds[ua], lengths) + offset], np.repeat(
            np.arange(ua.size), lengths
        )

    def component(
        us: list[int], lines_idx: np.ndarray, which: np.ndarray, name: str, default: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(value, run length, ok) of component ``name`` for every line."""
        table = [specs[u][2].get(name) for u in us]  # type: ignore[index]
        ordinal = np.array([t[0] if t else -1 for t in table], np.int64)[which]
        const = np.array([t[1] if t and t[0] < 0 else default for t in table], np.int64)[which]
        div = np.array([t[1] if t and t[0] >= 0 else 1 for t in table], np.int64)[which]
        mod = np.array([t[2] if t and t[0] >= 0 else 0 for t in table], np.int64)[which]
        want = np.array([t[3] if t and t[0] >= 0 else 0 for t in table], np.int64)[which]
        has = ordinal >= 0
        run = np.where(has, first_run[lines_idx] + ordinal, 0)
        has &= run < first_run[lines_idx + 1]
        run = np.where(has, run, 0)
        rs = scan.run_starts[run]
        length = np.where(has, scan.run_ends[run] - rs, 0)
        ok = ~has | (length <= 19)
        value = _int_runs(a, np.where(has, rs, 0), np.where(has & ok, length, 0))
        sub = mod > 0
        ok &= ~sub | (length == want)
        value = np.where(sub, (value // np.maximum(div, 1)) % np.maximum(mod, 1), value)
        value = np.where(has, value, const)
        ok &= has | (ordinal < 0)
        return value, length, ok

    fallback: list[int] = []
    civil: list[int] = []
    epoch: list[int] = []
    for u, spec in enumerate(specs):
        if spec is None:
            continue
        if spec == _FALLBACK:
            fallback.append(u)
        elif spec[0] == "civil":  # type: ignore[index]
            civil.append(u)
        else:
            epoch.append(u)

    if civil:
        idx, which = expand(civil)
        values = {}
        ok = np.ones(idx.size, bool)
        for name, default in (
            ("Y", 1970),
            ("M", 1),
            ("D", 1),
            ("h", 0),
            ("m", 0),
            ("s", 0),
            ("tzh", 0),
            ("tzm", 0),
            ("sign", 1),
        ):
            v, _, good = component(civil, idx, which, name, default)
            values[name] = v
            ok &= good
        f, flen, good = component(civil, idx, which, "f", 0)
        ok &= good
        frac_ns = np.where(flen > 0, f * _POW10_INT[np.clip(9 - flen, 0, 9)], 0)
        y, mo, d = values["Y"], values["M"], values["D"]
        h, mi, sec = values["h"], values["m"], values["s"]
        leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
        dim = _DAYS_IN_MONTH[np.clip(mo, 0, 12)] - ((mo == 2) & ~leap)
        ok &= (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= dim) & (h <= 23) & (mi <= 59) & (sec <= 59)
        ok &= (y >= 1678) & (y <= 2261) & (values["tzh"] <= 23) & (values["tzm"] <= 59)
        seconds = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec
        seconds -= values["sign"] * (values["tzh"] * 3600 + values["tzm"] * 60)
        out[idx] = np.where(ok, seconds * 1_000_000_000 + frac_ns, _NAT)

    if epoch:
        idx, which = expand(epoch)
        e, elen, ok = component(epoch, idx, which, "e", 0)
        f, flen, good = component(epoch, idx, which, "f", 0)
        ok &= good & (elen >= 9) & (elen <= 19)
        scale = np.select([elen <= 11, elen <= 14, elen <= 17], [9, 6, 3], 0)
        frac = np.where(flen > 0, f * _POW10_INT[np.clip(scale - flen, 0, 9)], 0)
        frac = np.where(flen > scale, f // _POW10_INT[np.clip(flen - scale, 0, 18)], frac)
        frac = np.where(scale == 0, 0, frac)
        out[idx] = np.where(ok, e * _POW10_INT[scale] + frac, _NAT)

    if fallback:
        idx, _ = expand(fallback)
        out[idx] = _parse_per_line([lines[i] for i in idx.tolist()], fmt, year)
    return out


_POW10_INT = 10 ** np.arange(19, dtype=np.int64)
_VECTOR_MIN = 256


def parse_timestamps(
    lines: Sequence[str],
    fmt: str = "auto",
    default_year: int | None = None,
) -> np.ndarray:
    """Unix nanoseconds (int64) of the timestamp in each line; ``INT64_MIN`` where none.

    ``fmt`` narrows where to look: ``text`` (a leading timestamp, or an access-log one),
    ``json`` (JSON fields), ``logfmt`` (``ts=``/``time=``), ``auto`` (all, in that order).
    Large inputs are parsed per line *shape* (see :mod:`aiops.logs.templates`): the timestamp's
    format and position are found once per shape and every line's value is computed from its
    digits with numpy; small inputs, and shapes whose format needs it, go line by line.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"fmt must be one of {', '.join(FORMATS)}", field="fmt", value=fmt)
    year = default_year or datetime.now(UTC).year
    if len(lines) < _VECTOR_MIN:
        return _parse_per_line(lines, fmt, year)
    return _parse_vectorised(lines, fmt, year)


def _labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidInput("labels must be a mapping of label name to value", field="labels")
    return {str(k): str(v) for k, v in labels.items()}


def make_frame(lines: Sequence[str], timestamps_ns: np.ndarray, labels: Any) -> pd.DataFrame:
    """Assemble a log frame. ``labels``: one dict shared by every row, or one dict per row."""
    n = len(lines)
    ts = pd.DatetimeIndex(np.asarray(timestamps_ns, np.int64).view("M8[ns]"), tz="UTC")
    if isinstance(labels, Mapping):
        label_col = np.empty(n, dtype=object)
        label_col[:] = [labels] * n if n else []
    else:
        label_col = np.asarray(list(labels), dtype=object)
        if label_col.shape != (n,):
            raise InvalidInput("labels must have one entry per line", field="labels")
    return pd.DataFrame(
        {
            "timestamp": pd.Series(ts, dtype="datetime64[ns, UTC]"),
            "labels": pd.Series(label_col, dtype=object),
            "line": pd.Series(list(lines), dtype=object).astype(str)
            if n
            else pd.Series([], dtype=str),
        },
        columns=list(COLUMNS),
    )


def empty_frame() -> pd.DataFrame:
    return make_frame([], np.zeros(0, np.int64), {})


def from_lines(
    lines: Iterable[str],
    labels: Mapping[str, Any] | None = None,
    default_time: Any = None,
    *,
    fmt: str = "auto",
) -> pd.DataFrame:
    """A log frame from raw lines (e.g. posted in an API body).

    Each line's timestamp is parsed from the line when it has one, else ``default_time``
    (anything ``pandas.Timestamp`` accepts; naive means UTC; ``None`` means now).
    """
    if isinstance(lines, (str, bytes)):
        raise InvalidInput("lines must be a list of strings, not one string", field="lines")
    out_lines: list[str] = []
    for i, line in enumerate(lines):
        if not isinstance(line, str):
            raise InvalidInput(f"line {i} is not a string", field="lines", index=i)
        out_lines.append(line.rstrip("\r\n") if line.endswith(("\n", "\r")) else line)
    default_ns = _utc_ns(default_time)
    if default_ns is None:
        default_ns = _utc_ns(pd.Timestamp.now(tz="UTC"))
    year = pd.Timestamp(default_ns, unit="ns", tz="UTC").year
    ts = parse_timestamps(out_lines, fmt, default_year=year)
    ts[ts == _NAT] = default_ns
    return make_frame(out_lines, ts, _labels(labels))


def validate_frame(frame: Any) -> pd.DataFrame:
    """Check a frame has the log-frame columns; returns it with UTC nanosecond timestamps."""
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput("expected a pandas DataFrame log frame", field="frame")
    missing = [c for c in ("timestamp", "line") if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"log frame is missing column(s): {', '.join(missing)}", field="frame", missing=missing
        )
    ts = frame["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        try:
            ts = pd.to_datetime(ts, utc=True)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                "log frame timestamp column is not datetimes", field="frame"
            ) from exc
    if ts.dtype != "datetime64[ns, UTC]":
        ts = ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if ts is not frame["timestamp"]:
        frame = frame.assign(timestamp=ts)
    return frame
