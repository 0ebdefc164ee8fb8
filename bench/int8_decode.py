"""Tried and dropped: int8 weight-only decode beside the bf16 weights (separate prefill and decode weights).

    python bench/int8_decode.py

Every nn.Linear of the 1.5B gets an int8 per-channel copy; steps of <= 16 rows use
torch._weight_int8pack_mm on it, prefill keeps the bf16 (AMX) matmul. Prints the forward time of a
1-token and an 11-token step, then TTFT/total medians and answer agreement on 8 eval questions.
"""

import json
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from docqa.answering.pipeline import Pipeline
from docqa.settings import Settings


class DualLinear(nn.Module):
    """bf16 weights for prefill (many rows), int8 weight-only for decode steps (few rows)."""

    def __init__(self, linear, keep_full=True, max_rows=16):
        super().__init__()
        w = linear.weight.detach()
        wf = w.float()
        s = wf.abs().amax(1).clamp(min=1e-8) / 127
        self.q = (wf / s[:, None]).round().clamp(-128, 127).to(torch.int8).contiguous()
        self.s = s.to(w.dtype)
        self.w = w if keep_full else None
        self.bias = linear.bias
        self.max_rows = max_rows

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        if flat.shape[0] <= self.max_rows or self.w is None:
            out = torch._weight_int8pack_mm(flat.contiguous(), self.q, self.s)
        else:
            out = F.linear(flat, self.w)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])


p = Pipeline.from_settings(Settings.load())
g = p.generator
qs = [json.loads(line)["question"] for line in open("eval/questions.jsonl")][:16:2]


def run():
    out = []
    for q in qs:
        a = p.ask(q)
        out.append((a.timings.get("first_token_ms"), a.timings.get("total_ms"), a.answer))
    return out


def forward_ms(n):
    ids = torch.randint(100, 1000, (1, 600))
    from transformers import DynamicCache

    ts = []
    with torch.inference_mode():
        c = DynamicCache(config=g.model.config)
        g.model(input_ids=ids, cache=c)
        for _ in range(6):
            t = time.perf_counter()
            g.model(input_ids=ids[:, :n], cache=c, logits_to_keep=n)
            ts.append(time.perf_counter() - t)
            c.crop(-n)
    return statistics.median(ts) * 1000


print("bf16 forward ms: 1 tok", forward_ms(1), "11 tok", forward_ms(11))
base = run()
base2 = run()
targets = [(name, m) for name, m in g.model.named_modules() if isinstance(m, nn.Linear)]
for name, m in targets:
    parent = g.model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else g.model
    setattr(parent, name.rsplit(".", 1)[-1], DualLinear(m))
print("dual forward ms: 1 tok", forward_ms(1), "11 tok", forward_ms(11))
print("rss GB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
dual = run()
dual2 = run()


def med(r, i):
    return statistics.median(x[i] for x in r)


print("bf16 ttft", med(base + base2, 0), "total", med(base + base2, 1))
print("dual ttft", med(dual + dual2, 0), "total", med(dual + dual2, 1))
print("same answers", sum(a[2] == b[2] for a, b in zip(base, dual, strict=True)), len(base))
for a, b in zip(base, dual, strict=True):
    if a[2] != b[2]:
        print(" ", a[2][:120], "\n  ", b[2][:120])
