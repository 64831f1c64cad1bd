"""Reads the metadata (key/value) section of a GGUF file: enough for the
chat template and the special tokens, without numpy or the gguf package.

Layout (little-endian): "GGUF", u32 version (2 or 3), u64 tensor count,
u64 key/value count, then each pair: string key, u32 value type, value.
A string is a u64 byte length and the bytes; an array is a u32 element
type, a u64 count and the elements."""

import struct

# value type -> struct format of the scalar
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class _Reader:
    def __init__(self, f):
        self.f = f

    def take(self, fmt):
        size = struct.calcsize("<" + fmt)
        data = self.f.read(size)
        if len(data) != size:
            raise ValueError("truncated GGUF header")
        return struct.unpack("<" + fmt, data)[0]

    def string(self):
        n = self.take("Q")
        data = self.f.read(n)
        if len(data) != n:
            raise ValueError("truncated GGUF string")
        return data.decode("utf-8", errors="surrogateescape")

    def value(self, t):
        if t in _SCALARS:
            return self.take(_SCALARS[t])
        if t == _STRING:
            return self.string()
        if t == _ARRAY:
            et = self.take("I")
            n = self.take("Q")
            return [self.value(et) for _ in range(n)]
        raise ValueError(f"unknown GGUF value type {t}")


def read_metadata(path):
    """{key: value} of a GGUF file (arrays as lists)."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        r = _Reader(f)
        version = r.take("I")
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version}")
        r.take("Q")  # tensors
        n_kv = r.take("Q")
        meta = {}
        for _ in range(n_kv):
            key = r.string()
            meta[key] = r.value(r.take("I"))
        return meta


def _pack_value(v):
    """(type, bytes) of a Python scalar as a GGUF value: str, bool, int (i32), float (f32)."""
    if isinstance(v, str):
        b = v.encode()
        return _STRING, struct.pack("<Q", len(b)) + b
    if isinstance(v, bool):
        return 7, struct.pack("<?", v)
    if isinstance(v, int):
        return 5, struct.pack("<i", v)
    if isinstance(v, float):
        return 6, struct.pack("<f", v)
    raise TypeError(f"no GGUF type for {type(v).__name__}")


def write_with_metadata(src, dst, extra):
    """Copies the GGUF file src to dst with the keys of `extra` added (keys
    src already has are left as they are: add only new ones).  The tensor
    table is kept byte for byte and the data section re-aligned, so tensor
    offsets (relative to the data section) stay valid."""
    with open(src, "rb") as f:
        blob = f.read()
    import io

    f = io.BytesIO(blob)
    f.read(4)
    r = _Reader(f)
    version = r.take("I")
    n_tensors = r.take("Q")
    n_kv = r.take("Q")
    kv_start = f.tell()
    alignment = 32
    for _ in range(n_kv):
        key = r.string()
        v = r.value(r.take("I"))
        if key == "general.alignment":
            alignment = v
        if key in extra:
            raise ValueError(f"{src} already has {key}")
    kv_end = f.tell()
    for _ in range(n_tensors):
        r.string()
        n_dims = r.take("I")
        for _ in range(n_dims):
            r.take("Q")
        r.take("I")  # type
        r.take("Q")  # offset
    tensors_end = f.tell()
    data_start = -(-tensors_end // alignment) * alignment
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv + len(extra)))
    out += blob[kv_start:kv_end]
    for key, v in extra.items():
        kb = key.encode()
        t, vb = _pack_value(v)
        out += struct.pack("<Q", len(kb)) + kb + struct.pack("<I", t) + vb
    out += blob[kv_end:tensors_end]
    out += b"\0" * (-len(out) % alignment)
    out += blob[data_start:]
    with open(dst, "wb") as g:
        g.write(out)
