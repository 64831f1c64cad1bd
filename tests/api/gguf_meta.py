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
