#!/usr/bin/env python3
"""Reference renders of chat templates, for tests/unit/test_chat_template.c.

Renders every tests/golden/templates/*.jinja over a fixed set of conversations
with Python jinja2 set up the way Hugging Face transformers' apply_chat_template
sets it up (an ImmutableSandboxedEnvironment with trim_blocks=True,
lstrip_blocks=True and the loopcontrols extension; raise_exception() as a
global; tojson as json.dumps(ensure_ascii=False)), and writes
tests/golden/templates/expected.json:

    {"<template name>": [{"messages": [...], "add_generation_prompt": bool,
                          "bos_token": str, "eos_token": str,
                          "output": str} | {..., "error": str, "raised": bool}, ...], ...}

The C test reads that file (CI never runs Python) and compares byte for byte.

    python3 -m venv ~/.cache/ryot/venv-tmpl && ~/.cache/ryot/venv-tmpl/bin/pip install jinja2
    ~/.cache/ryot/venv-tmpl/bin/python tests/golden/gen_templates.py            # expected.json
    ~/.cache/ryot/venv-tmpl/bin/python tests/golden/gen_templates.py --extract  # model templates too

--extract first copies tokenizer.chat_template out of the default models and
the shared tokenizer test vocabs (model_<name>.jinja); GGUF files without one
are listed and skipped.  The GGUF reader below only walks the metadata.
"""
import argparse
import glob
import json
import os
import struct
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL_DIR = os.environ.get("RYOT_MODEL_DIR", os.path.expanduser("~/.cache/ryot/models"))

# (file, name) of the GGUFs whose templates are stored as model_<name>.jinja
GGUF_SOURCES = [
    (os.path.join(MODEL_DIR, "SmolLM2-135M-Instruct.Q4_1.gguf"), "smollm2"),
    (os.path.join(MODEL_DIR, "gemma-3-270m-q4_k_m.gguf"), "gemma3"),
] + [(p, os.path.basename(p)[:-5]) for p in sorted(glob.glob(os.path.join(ROOT, "..", "shared", "testdata",
                                                                              "tokenizer", "*.gguf")))]

# bos/eos texts given to each template (what the model family's vocab has)
TOKENS = {
    "chatml": ("", "<|im_end|>"),
    "qwen2": ("", "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama2": ("<s>", "</s>"),
    "mistral": ("<s>", "</s>"),
    "gemma": ("<bos>", "<eos>"),
    "model_smollm2": ("<|im_start|>", "<|im_end|>"),
    "model_llama3": ("<|begin_of_text|>", "<|end_of_text|>"),
    "model_phi-3": ("<s>", "<|endoftext|>"),
}
DEFAULT_TOKENS = ("<s>", "</s>")


def msg(role, content):
    return {"role": role, "content": content}


CONVERSATIONS = [
    [msg("system", "You are a terse assistant."), msg("user", "What is the capital of France?")],
    [msg("system", "Answer in French."), msg("user", "Hello!"), msg("assistant", "Bonjour !"),
     msg("user", "How are you?")],
    [msg("user", "Hi"), msg("assistant", "Hello, how can I help?"), msg("user", "Tell me a joke.")],
    [msg("user", "")],
    [msg("system", "Réponds en français, s'il te plaît."),
     msg("user", "こんにちは 👋 Ünïcødé\ttab\nsecond line — “quotes” ΑΒΓ ЖЗИ")],
    [msg("user", "  padded with spaces and newlines \n\n"), msg("assistant", "\n  indented answer  ")],
    [msg("user", "first"), msg("user", "second without an answer between")],
    [msg("assistant", "I start the conversation.")],
    [],
    [msg("user", "question"), msg("assistant", None)],
    [msg("system", "sys one"), msg("system", "sys two"), msg("user", "q"), msg("tool", "{\"r\": 1}")],
]
# feature templates use a few of them
FEATURE_CONVERSATIONS = [0, 2, 4, 8]


class Raised(Exception):
    pass


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def read_gguf_template(path):
    """tokenizer.chat_template of a GGUF file (v2/v3), or None."""
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    with open(path, "rb") as f:
        def read(fmt):
            size = struct.calcsize("<" + fmt)
            return struct.unpack("<" + fmt, f.read(size))[0]

        def string():
            return f.read(read("Q"))

        def skip(t):
            if t == 8:
                string()
            elif t == 9:
                et, n = read("I"), read("Q")
                if et in scalar:
                    f.seek(struct.calcsize("<" + scalar[et]) * n, 1)
                else:
                    for _ in range(n):
                        skip(et)
            else:
                f.seek(struct.calcsize("<" + scalar[t]), 1)

        if f.read(4) != b"GGUF":
            raise ValueError(path + ": not a GGUF file")
        read("I")
        read("Q")
        for _ in range(read("Q")):
            key = string()
            t = read("I")
            if key == b"tokenizer.chat_template" and t == 8:
                return string()
            skip(t)
    return None


def extract():
    for path, name in GGUF_SOURCES:
        if not os.path.exists(path):
            print("missing", path, file=sys.stderr)
            continue
        tmpl = read_gguf_template(path)
        if tmpl is None:
            print("no chat template in", path)
            continue
        out = os.path.join(TEMPLATES, "model_%s.jinja" % name)
        with open(out, "wb") as f:
            f.write(tmpl)
        print("wrote", out, len(tmpl), "bytes")


def render_all():
    env = environment()
    expected = {}
    for path in sorted(glob.glob(os.path.join(TEMPLATES, "*.jinja"))):
        name = os.path.basename(path)[:-6]
        with open(path, "rb") as f:
            source = f.read().decode("utf-8")
        tmpl = env.from_string(source)
        bos, eos = TOKENS.get(name, DEFAULT_TOKENS)
        convs = CONVERSATIONS if name == "feat_errors" or not name.startswith("feat_") else [CONVERSATIONS[i] for i in FEATURE_CONVERSATIONS]
        cases = []
        for conv in convs:
            for agp in (False, True):
                case = {"messages": conv, "add_generation_prompt": agp, "bos_token": bos, "eos_token": eos}
                try:
                    case["output"] = tmpl.render(messages=[dict(m) for m in conv], add_generation_prompt=agp,
                                                 bos_token=bos, eos_token=eos)
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                    # raise_exception's TemplateError is the base class itself
                    case["raised"] = type(e) is jinja2.exceptions.TemplateError
                except Exception as e:  # TypeError and friends: a render error too
                    case["error"] = "%s: %s" % (type(e).__name__, e)
                    case["raised"] = False
                cases.append(case)
        expected[name] = cases
    out = os.path.join(TEMPLATES, "expected.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n = sum(len(c) for c in expected.values())
    errs = sum(1 for c in expected.values() for x in c if "error" in x)
    print("wrote %s: %d templates, %d renders (%d errors), jinja2 %s" % (out, len(expected), n, errs,
                                                                        jinja2.__version__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extract", action="store_true", help="copy the templates out of the GGUF files first")
    args = ap.parse_args()
    if args.extract:
        extract()
    render_all()


if __name__ == "__main__":
    main()
