"""Reference BERT sentence encoder in numpy, written from the model description,
reading a Hugging Face directory directly (model.safetensors, config.json,
tokenizer.json): the tokenizer follows tokenizer.json's rules (added special
tokens split out, BertNormalizer, BertPreTokenizer, WordPiece, [CLS]/[SEP]),
the forward runs in float64."""
import json
import struct
import unicodedata
from pathlib import Path

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16}


def load_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] not in DTYPES:
            continue
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=DTYPES[t["dtype"]]).reshape(t["shape"]).astype(np.float64)
    return out


WS_EXTRA = {0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000} | set(range(0x2000, 0x200B))


def _is_ws(c):
    return c in " \t\n\r" or ord(c) in WS_EXTRA


def _is_control(c):
    return c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs")


def _is_punct(c):
    o = ord(c)
    if 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def _is_cjk(o):
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2A6DF or 0x2A700 <= o <= 0x2B73F
            or 0x2B740 <= o <= 0x2B81F or 0x2B820 <= o <= 0x2CEAF or 0xF900 <= o <= 0xFAFF
            or 0x2F800 <= o <= 0x2FA1F)


class WordPiece:
    def __init__(self, tokenizer_json):
        t = json.loads(Path(tokenizer_json).read_text())
        m = t["model"]
        assert m["type"] == "WordPiece"
        self.vocab = m["vocab"]
        self.unk = self.vocab[m["unk_token"]]
        self.prefix = m["continuing_subword_prefix"]
        self.max_chars = m["max_input_chars_per_word"]
        norm = t["normalizer"]
        self.lowercase = norm["lowercase"]
        self.strip = norm["strip_accents"] if norm["strip_accents"] is not None else self.lowercase
        self.chinese = norm["handle_chinese_chars"]
        self.added = sorted((a["content"] for a in t["added_tokens"] if a["special"]), key=len, reverse=True)
        self.cls, self.sep = self.vocab["[CLS]"], self.vocab["[SEP]"]

    def _normalize(self, text):
        out = []
        for c in text:
            o = ord(c)
            if o == 0 or o == 0xFFFD or _is_control(c):
                continue
            if _is_ws(c):
                out.append(" ")
            elif self.chinese and _is_cjk(o):
                out.append(" " + c + " ")
            else:
                out.append(c)
        s = "".join(out)
        if self.strip:
            s = "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn")
        if self.lowercase:
            s = s.lower()
        return s

    def _words(self, s):
        words, cur = [], ""
        for c in s:
            if _is_ws(c):
                if cur:
                    words.append(cur)
                cur = ""
            elif _is_punct(c):
                if cur:
                    words.append(cur)
                words.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            words.append(cur)
        return words

    def _word_ids(self, w):
        if len(w) > self.max_chars:
            return [self.unk]
        ids, start = [], 0
        while start < len(w):
            end = len(w)
            while end > start:
                piece = w[start:end] if start == 0 else self.prefix + w[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:
                return [self.unk]
            ids.append(self.vocab[piece])
            start = end
        return ids

    def _plain(self, text):
        return [i for w in self._words(self._normalize(text)) for i in self._word_ids(w)]

    def encode(self, text):
        ids, i, seg = [], 0, 0
        while i < len(text):
            hit = next((a for a in self.added if text.startswith(a, i)), None)
            if hit:
                ids += self._plain(text[seg:i]) + [self.vocab[hit]]
                i += len(hit)
                seg = i
            else:
                i += 1
        ids += self._plain(text[seg:])
        return [self.cls] + ids + [self.sep]


def _layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    from math import erf, sqrt
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))


class Encoder:
    def __init__(self, model_dir):
        d = Path(model_dir)
        self.cfg = json.loads((d / "config.json").read_text())
        raw = load_safetensors(d / "model.safetensors")
        self.w = {k[5:] if k.startswith("bert.") else k: v for k, v in raw.items()}
        self.tok = WordPiece(d / "tokenizer.json")

    def embed_ids(self, ids):
        w, c = self.w, self.cfg
        eps, nh = c["layer_norm_eps"], c["num_attention_heads"]
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layernorm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        hd = x.shape[1] // nh
        for il in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{il}."

            def lin(name, v):
                return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q = lin("attention.self.query", x).reshape(n, nh, hd).transpose(1, 0, 2)
            k = lin("attention.self.key", x).reshape(n, nh, hd).transpose(1, 0, 2)
            v = lin("attention.self.value", x).reshape(n, nh, hd).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(1, 0, 2).reshape(n, -1)
            x = _layernorm(x + lin("attention.output.dense", a), w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"], eps)
            h = _gelu(lin("intermediate.dense", x))
            x = _layernorm(x + lin("output.dense", h), w[p + "output.LayerNorm.weight"],
                           w[p + "output.LayerNorm.bias"], eps)
        v = x.mean(0)
        return v / max(np.linalg.norm(v), 1e-12)
