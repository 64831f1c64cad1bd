"""Correctness of the BERT encoder (`ryot embed`, `ryot convert`) against the
numpy reference in reference.py, on all-MiniLM-L6-v2 as
scripts/fetch-models.sh installs it: the Hugging Face directory and its
converted F32 GGUF.  Without them the tests skip, or fail when CI=true."""
import os
import struct
import subprocess
import tempfile

import numpy as np
import pytest

import reference

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RYOT = os.environ.get("RYOT", "build/ryot")
if "/" in RYOT and not os.path.isabs(RYOT):
    RYOT = os.path.join(REPO, RYOT)
MODELS = os.environ.get("RYOT_MODEL_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "ryot", "models")
HF_DIR = os.path.join(MODELS, "all-MiniLM-L6-v2")
GGUF = os.path.join(MODELS, "all-MiniLM-L6-v2.f32.gguf")

TEXTS = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the street corner.",
    "A woman is slicing onions in the kitchen.",
    "Two dogs are running through a snowy field.",
    "The stock market fell sharply on Tuesday after the announcement.",
    "Photosynthesis converts light energy into chemical energy.",
    "How do I reset my password?",
    "I forgot my login credentials; can you help me recover the account?",
    "What's the weather like in Paris tomorrow?",
    "Paris is the capital and most populous city of France.",
    "Berlin is the capital of Germany.",
    "The mitochondria is the powerhouse of the cell.",
    "She sells seashells by the seashore.",
    "Python 3.12 was released in October 2023.",
    "The price is $19.99 (tax included), or 25% off with code SAVE25.",
    "E=mc^2 relates mass and energy.",
    "Email me at someone@example.com or call +1-555-0100.",
    "Café au lait, crème brûlée and a naïve façade.",
    "Ångström, Øresund, Smörgåsbord, Żubrówka.",
    "Straße and Fußball are German words.",
    "東京は日本の首都です。",
    "我喜欢吃苹果和香蕉。",
    "Привет, как дела?",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "안녕하세요 세계",
    "Emoji are fun 😀🎉 but rarely in the vocabulary.",
    "UPPERCASE TEXT SHOULD BE LOWERCASED BY THE NORMALIZER.",
    "tabs\tand\nnewlines\r\nare whitespace",
    "Multiple     spaces    between     words.",
    "Hyphenated-words, semi-colons; and: colons!",
    "unbelievably antidisestablishmentarianism supercalifragilisticexpialidocious",
    "Thequickbrownfoxjumpsoverthelazydogwithoutanyspacesatallinthisverylongrunofletterswhichkeepsgoingandgoing"
    "untilitpassesonehundredcharacters",
    "The [MASK] sat on the mat.",
    "[CLS] typed by hand and [SEP] too",
    "...!!!???",
    "a",
    "",
    "1234567890",
    "The year 1969 saw the first Moon landing.",
    "Machine learning models need data to learn patterns.",
    "Deep neural networks have many layers.",
    "Transformers use attention to relate tokens to each other.",
    "The cat is sleeping on the warm windowsill.",
    "A kitten naps in the sunshine by the window.",
    "The recipe calls for two cups of flour and one egg.",
    "Add sugar, butter and vanilla, then stir well.",
    "The train to Boston leaves at 7:45 a.m. from platform 3.",
    "He said, \"I'll be there by noon,\" and left.",
    "It's a truth universally acknowledged...",
    "Control\u0007characters\u200band zero\u00a0width spaces",
    "Soft\u00adhyphen and combining e\u0301 accent",
    "Rock 'n' roll isn't dead.",
    "C++ and C# are programming languages; so is Go.",
    "The patient's blood pressure was 120/80 mmHg.",
]


def _need(path):
    if os.path.exists(path):
        return
    msg = f"{path} is missing (scripts/fetch-models.sh minilm)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def ref():
    _need(HF_DIR)
    return reference.Encoder(HF_DIR)


def run_embed(model, texts, *args):
    assert all("\n" not in t for t in texts)
    p = subprocess.run([RYOT, "embed", "-m", model, *args], input="\n".join(texts) + "\n",
                       capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def embed(model, texts, *args):
    return np.array([[float(x) for x in line.split()] for line in run_embed(model, texts, *args)])


def one_line(t):
    return t.replace("\r\n", " ").replace("\n", " ")


LINES = [one_line(t) for t in TEXTS]


def test_enough_texts():
    assert len(LINES) >= 50


def test_token_ids_match_tokenizer_json(ref):
    _need(GGUF)
    got = [[int(x) for x in line.split()] for line in run_embed(GGUF, LINES, "--ids")]
    assert len(got) == len(LINES)
    for text, ids in zip(LINES, got):
        assert ids == ref.tok.encode(text), text


def test_embeddings_match_reference(ref):
    _need(GGUF)
    got = embed(GGUF, LINES)
    assert got.shape == (len(LINES), 384)
    for text, v in zip(LINES, got):
        r = ref.embed_ids(ref.tok.encode(text))
        assert abs(np.linalg.norm(v) - 1) < 1e-5, text
        cos = float(v @ r / np.linalg.norm(v) / np.linalg.norm(r))
        assert cos >= 0.9999, f"{text!r}: cosine {cos}"


def test_reference_is_discriminative(ref):
    """Guards the comparison itself: different sentences are not near-identical."""
    a = ref.embed_ids(ref.tok.encode(LINES[1]))
    b = ref.embed_ids(ref.tok.encode(LINES[6]))
    assert float(a @ b) < 0.5


def test_batch_and_threads_do_not_change_vectors():
    _need(GGUF)
    sub = LINES[:6]
    batched = embed(GGUF, sub, "-t", "2")
    alone = np.array([embed(GGUF, [t], "-t", "1")[0] for t in sub[:3]])
    assert np.array_equal(batched[:3], alone)


@pytest.mark.parametrize("qtype,min_cos", [("F16", 0.9999), ("Q8_0", 0.995)])
def test_converted_types(ref, qtype, min_cos):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "m.gguf")
        p = subprocess.run([RYOT, "convert", HF_DIR, "-o", out, "--type", qtype], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        got = embed(out, LINES[:12])
    for text, v in zip(LINES[:12], got):
        r = ref.embed_ids(ref.tok.encode(text))
        cos = float(v @ r / np.linalg.norm(v) / np.linalg.norm(r))
        assert cos >= min_cos, f"{qtype} {text!r}: cosine {cos}"


def _convert_err(src_dir, mutate):
    """Copies the model directory with model.safetensors replaced by mutate(bytes)."""
    with tempfile.TemporaryDirectory() as d:
        for name in ("config.json", "tokenizer.json"):
            os.symlink(os.path.join(src_dir, name), os.path.join(d, name))
        with open(os.path.join(src_dir, "model.safetensors"), "rb") as f:
            raw = f.read()
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(mutate(raw))
        p = subprocess.run([RYOT, "convert", d, "-o", os.path.join(d, "out.gguf")], capture_output=True, text=True)
        return p.returncode, p.stderr.strip(), os.path.exists(os.path.join(d, "out.gguf"))


@pytest.mark.parametrize("mutate,needle", [
    (lambda raw: raw[:4], "too short"),
    (lambda raw: struct.pack("<Q", len(raw)) + raw[8:], "header length"),
    (lambda raw: raw[:8] + b"[" + raw[9:], "header"),
    (lambda raw: raw[:len(raw) - 1000], "data_offsets"),
])
def test_convert_rejects_malformed_safetensors(mutate, needle):
    _need(HF_DIR)
    rc, err, wrote = _convert_err(HF_DIR, mutate)
    assert rc == 1 and not wrote
    assert needle in err and err.startswith("ryot convert: ") and "\n" not in err, err
