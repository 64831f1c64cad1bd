# llama.cpp (llama-cpp-python) sentence-embedding throughput on the same
# GGUF and sentences as `ryot bench embed -f FILE`; used by bench/embed_vs_llamacpp.sh.
# usage: llama_embed_bench.py MODEL.gguf THREADS FILE BATCH REPS
import sys, time, statistics
from llama_cpp import Llama
path, threads, fname, batch, reps = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
texts = [l.strip() for l in open(fname) if l.strip()]
m = Llama(model_path=path, embedding=True, n_threads=threads, n_threads_batch=threads, n_ctx=2048, n_batch=2048, n_ubatch=2048, verbose=False)
def once():
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        m.embed(texts[i:i + batch])
    return time.perf_counter() - t
once()
p = sorted(once() for _ in range(reps))
med = p[len(p) // 2]
print(f"llama.cpp threads {threads} sentences {len(texts)} batch {batch}: median {med*1e3:.1f} ms  {len(texts)/med:.1f} sentences/s")
