"""KV reuse of the system prompt on and off, on the same eval questions (default profile).

    python bench/prefix_reuse.py

Modes: hf (transformers generate + prompt lookup, full prefill), loop (docqa decode loop, full
prefill), reuse (docqa loop starting from a copy of the system prompt KV cache). Two rounds of 8
questions each; prints TTFT and total medians and how many answers equal the hf ones.
"""

import json
import statistics

from docqa.answering.pipeline import Pipeline
from docqa.settings import Settings

p = Pipeline.from_settings(Settings.load())
g = p.generator
qs = [json.loads(line)["question"] for line in open("eval/questions.jsonl")][:16:2]


def run(mode):
    g._plain_greedy = mode != "hf"
    g.reuse_prefix = mode == "reuse"
    out = []
    for q in qs:
        a = p.ask(q)
        out.append((a.timings.get("first_token_ms"), a.timings.get("total_ms"), a.answer, a.usage))
    return out


run("reuse")
res = {}
for _round in range(2):
    for mode in ("hf", "loop", "reuse"):
        r = run(mode)
        res.setdefault(mode, []).extend(r)
for mode, r in res.items():
    print(
        mode,
        "ttft p50",
        round(statistics.median(x[0] for x in r)),
        "total p50",
        round(statistics.median(x[1] for x in r)),
    )
print("prompt tokens", [x[3].get("prompt_tokens") for x in res["reuse"][:8]])
for m in ("loop", "reuse"):
    print(m, "same as hf", sum(a[2] == b[2] for a, b in zip(res["hf"], res[m], strict=True)), "/", len(res[m]))
for a, b in zip(res["hf"], res["reuse"], strict=True):
    if a[2] != b[2]:
        print(repr(a[2][:150]), "\n   ", repr(b[2][:150]))
