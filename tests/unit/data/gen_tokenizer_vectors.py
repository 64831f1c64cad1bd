#!/usr/bin/env python3
"""Generate tokenizer test vectors with llama.cpp (through llama-cpp-python).

Run by hand when the texts or vocabs change; the files it writes are committed
and tests/unit/test_tokenizer.c (test_extra_vectors) and tests/cli/tokenize.sh
compare ryot against them without needing llama.cpp:

    bash bench/setup-reference-venv.sh      # once: ~/.cache/ryot/venv-ref
    ~/.cache/ryot/venv-ref/bin/python tests/unit/data/gen_tokenizer_vectors.py

The texts below aim at what llama.cpp's own vectors (shared/testdata/
tokenizer/*.inp) leave out: runs of punctuation and symbols, long digit runs
(llama.cpp's default pre-tokenizer cuts them in threes), digits of other
scripts, mixed scripts, and special-token texts inside plain text.  For each
vocab (shared/testdata/tokenizer/NAME.gguf, loaded vocab-only) it writes to
tests/unit/data/tokenizer/:

    NAME.inp          the texts, each followed by "\\n__ggml_vocab_test__\\n"
                      (the format of llama.cpp's .inp files)
    NAME.out          one line of ids per text: no BOS/EOS, specials not parsed
    NAME.special.out  the same with special tokens parsed
"""
import ctypes
import os
import sys

import llama_cpp
from llama_cpp import llama_cpp as ll

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
TESTDATA = os.environ.get("RYOT_TESTDATA", os.path.join(ROOT, "..", "shared", "testdata"))
OUT_DIR = os.path.join(HERE, "tokenizer")
MARKER = "\n__ggml_vocab_test__\n"

# gpt-neox has no tokenizer.ggml.pre: llama.cpp's default pre-tokenizer.
# phi-3 has a user-defined "</s>" that llama.cpp retypes as control.
VOCABS = ["gpt-neox", "phi-3", "gpt-2", "llama3", "llama-spm", "falcon", "starcoder",
          "deepseek-coder", "deepseek-llm", "mpt", "refact", "baichuan"]

TEXTS = [
    "Hello, world!!! Really?! ...and then --- nothing.",
    "1234567 and 12 345 6789012 or 1000000",
    "3.14159, 2,718,281 and 0x1F2E3D4C",
    "$100+200=300 <=> ^~| a||b a&&b",
    "x = (a+b)*[c-d]/{e}; y += z; p->q; m<<=2; n>>=3",
    "''' \"\"\" ``` ---- ==== ____ **** !!!!?????",
    "\u00dcn\u00efc\u00f6d\u00e9 na\u00efve caf\u00e9 \u2014 \u201cquotes\u201d \u00abguillemets\u00bb \u00a1hola! \u00bfqu\u00e9?",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\u53e5\u8aad\u70b9\u3002\uff11\uff12\uff13\uff14\uff15 and \u4e2d\u6587\uff0c\u6807\u70b9\uff01",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac. \u05e2\u05d1\u05e8\u05d9\u05ea. \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0661\u0662\u0663\u0664\u0665",
    "\u0663\u0664\u0665\u0666\u0667 \u2160\u2161\u2162 \u00b2\u00b3 \u00bd 12\u00bd 9876543210",
    "emoji \U0001f642\U0001f680 mixed\U0001f600text \u2764\ufe0f",
    "    indented\n\n\ttabs  and   spaces   \n",
    "don't I'll we've they're it's DON'T",
    "http://example.com/path?q=1&r=2#frag user@example.org",
    "</s>",
    "a</s>b </s> end</s>",
    "<s>Hello</s>",
    "<|endoftext|>",
    "text<|endoftext|>more <|endoftext|> ",
    "<|user|>\nHi<|end|>\n<|assistant|>\n",
    "<|im_start|>user\nhello<|im_end|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    " ",
    "\n",
    "  \n  ",
]


def tokenize(vocab, text, parse_special):
    data = text.encode("utf-8")
    cap = len(data) + 16
    buf = (ll.llama_token * cap)()
    n = ll.llama_tokenize(vocab, data, len(data), buf, cap, False, parse_special)
    if n < 0:
        sys.exit(f"llama_tokenize needs {-n} tokens")
    return list(buf[:n])


@ll.llama_log_callback
def quiet(level, text, user_data):
    """llama.cpp's load log, not wanted here."""


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    ll.llama_log_set(quiet, ctypes.c_void_p(0))
    ll.llama_backend_init()
    for name in VOCABS:
        path = os.path.join(TESTDATA, "tokenizer", name + ".gguf")
        params = ll.llama_model_default_params()
        params.vocab_only = True
        model = ll.llama_model_load_from_file(path.encode(), params)
        if not model:
            sys.exit(f"cannot load {path}")
        vocab = ll.llama_model_get_vocab(model)
        with open(os.path.join(OUT_DIR, name + ".inp"), "w", encoding="utf-8", newline="") as f:
            f.write("".join(t + MARKER for t in TEXTS))
        for suffix, special in ((".out", False), (".special.out", True)):
            with open(os.path.join(OUT_DIR, name + suffix), "w", encoding="utf-8", newline="") as f:
                for t in TEXTS:
                    f.write(" ".join(str(i) for i in tokenize(vocab, t, special)) + "\n")
        ll.llama_model_free(model)
        print(f"{name}: {len(TEXTS)} texts")
    print(f"llama-cpp-python {llama_cpp.__version__}")


if __name__ == "__main__":
    main()
