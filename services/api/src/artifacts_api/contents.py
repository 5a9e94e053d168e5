"""A listing page's ``Contents``, read by a parser made for them instead of botocore's.

botocore reads every response by walking its service model, element by element: on a
ListObjectsV2 page of 1,000 objects that costs the api about 60 µs of CPU an object, more
than SeaweedFS spends serving the page, and the api lists every object of a job for
``items`` (``bench/bench_listing.py`` measures both). The objects of a page are flat
records of a few text fields, which one regular expression reads in a few µs each.

The hook is botocore's own ``before-parse`` event, the one its handlers for S3's 200
errors and ``Expires`` header use: the objects read here go into
``customized_response_dict``, which botocore merges into what it parsed, and are cut out
of the body botocore then parses, so everything else on the page (``IsTruncated``, the
continuation token, ``CommonPrefixes``, the key count) is still botocore's, and so are
errors, retries and the URL-decoding of keys that follows (``EncodingType=url``).

Only what this module fully understands is taken over: a whole 200 answer in UTF-8 whose
every ``Contents`` is a run of known leaf elements (``Key``, ``LastModified``, ``ETag``,
``Size``, ``StorageClass``, the checksum fields) holding text with XML's own escapes, with
nothing between them, as SeaweedFS and moto (AWS's form) write them. A page with anything else
(an ``Owner`` when ``FetchOwner`` is asked, a ``RestoreStatus``, indentation, a CDATA
section, a carriage return that XML would normalise) is left whole to botocore.
Either way the caller gets the same dictionaries (``tests/api/test_contents.py`` checks
pages of awkward keys both ways). What XML itself forbids (a control character, raw or
as a reference, U+FFFE, U+FFFF) is left to botocore too, whose parser refuses the page.

botocore's first ``before-parse`` handler for S3, ``_handle_200_error``, parses every
200 body with ElementTree only to see whether it is an ``<Error>``: 3 µs an object of a
listing. This reader runs just before it, so that it parses what is left of the page.
It still sees every body this reader leaves whole: an ``<Error>``, a truncated page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from botocore import handlers

from artifacts_shared.s3 import S3Client, parse_s3_timestamp

__all__ = ["parse_contents_here", "read_contents"]

_EVENT = "before-parse.s3.*"
_OPERATION = "ListObjectsV2"
_ERROR_IN_200: Callable[..., None] = handlers._handle_200_error  # type: ignore[attr-defined]
"""botocore's handler, private: moved, not copied, so its checks stay botocore's."""
_ESCAPE = re.compile(r"&(?:(lt|gt|amp|quot|apos)|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_DECLARATION = re.compile(rb"<\?xml[^>]*encoding=[\"'](?!utf-8[\"'])", re.IGNORECASE)
_END = b"</ListBucketResult>"
_NOT_XML = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]")
"""Characters XML 1.0 does not allow, raw (U+FFFE and U+FFFF in UTF-8)."""

_SCALARS: dict[bytes, tuple[str, Callable[[str], Any]]] = {
    b"Key": ("Key", str),
    b"LastModified": ("LastModified", parse_s3_timestamp),
    b"ETag": ("ETag", str),
    b"Size": ("Size", int),
    b"StorageClass": ("StorageClass", str),
    b"ChecksumType": ("ChecksumType", str),
}
_LISTS = {b"ChecksumAlgorithm": "ChecksumAlgorithm"}


class _Unread(Exception):
    """Something this parser does not understand: botocore reads the page instead."""


def _unescape(match: re.Match[str]) -> str:
    named, decimal, hexadecimal = match.groups()
    if named:
        return _NAMED[named]
    code = int(decimal) if decimal else int(hexadecimal, 16)
    if not _xml_char(code):
        raise _Unread
    return chr(code)


def _xml_char(code: int) -> bool:
    """XML 1.0's ``Char``, which a character reference must name too."""
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _text(raw: bytes) -> str:
    text = raw.decode()
    if "&" not in text:
        return text
    quoted = text.replace("&#34;", '"').replace("&quot;", '"')  # every ETag has two
    if "&" not in quoted:
        return quoted
    if "&" in _ESCAPE.sub("", text):  # an entity XML does not define, or a stray &
        raise _Unread
    return _ESCAPE.sub(_unescape, text)


def _record(inner: bytes) -> dict[str, Any]:
    """``<Key>…</Key><Size>…</Size>…``: leaves only, nothing between them."""
    parts = inner.split(b"<")
    if parts[0] or len(parts) % 2 == 0:
        raise _Unread
    record: dict[str, Any] = {}
    for index in range(1, len(parts), 2):
        name, _, raw = parts[index].partition(b">")
        if parts[index + 1] != b"/" + name + b">" or b"\r" in raw:
            raise _Unread  # not a leaf; or a raw CR, which XML would turn into LF
        if name in _LISTS:
            record.setdefault(_LISTS[name], []).append(_text(raw))
            continue
        field, read = _SCALARS.get(name, (None, str))
        if field is None or field in record:
            raise _Unread
        try:
            record[field] = read(_text(raw))
        except ValueError:
            raise _Unread from None
    if "Key" not in record:
        raise _Unread
    return record


def read_contents(body: bytes) -> tuple[list[dict[str, Any]], bytes]:
    """The ``Contents`` of a ListObjectsV2 body as botocore would parse them, and the body
    without them; raises ``ValueError`` when the body is not in the form this reads."""
    if _DECLARATION.match(body) or not body.rstrip().endswith(_END):
        raise ValueError("the body is not a whole ListBucketResult in UTF-8")
    if _NOT_XML.search(body):
        raise ValueError("the body holds a character XML does not allow")
    head, *pieces = body.split(b"<Contents>")
    records: list[dict[str, Any]] = []
    rest = [head]
    try:
        for piece in pieces:
            inner, closed, after = piece.partition(b"</Contents>")
            if not closed:
                raise _Unread
            records.append(_record(inner))
            rest.append(after)
    except (_Unread, UnicodeDecodeError):
        raise ValueError("a Contents element is not a run of known text fields") from None
    remainder = b"".join(rest)
    if b"<Contents" in remainder:
        raise ValueError("a Contents element has attributes or another form")
    return records, remainder


def _parse_contents(
    operation_model: Any,
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any],
    **_: Any,
) -> None:
    body = response_dict.get("body")
    if (
        operation_model.name != _OPERATION
        or response_dict.get("status_code") != 200
        or not isinstance(body, bytes)
    ):
        return
    try:
        records, remainder = read_contents(body)
    except ValueError:
        return  # botocore reads the whole page, as it would without this module
    if records:
        customized_response_dict["Contents"] = records
        response_dict["body"] = remainder


def parse_contents_here(s3: S3Client) -> None:
    """Have ``s3``'s ListObjectsV2 pages read by ``read_contents`` where it can, just
    before botocore's check for an error in a 200 answer (both first in their event)."""
    events = s3.meta.events
    events.unregister(_EVENT, _ERROR_IN_200)
    events.register_first(_EVENT, _parse_contents)
    events.register_first(_EVENT, _ERROR_IN_200)
