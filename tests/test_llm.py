"""The hand-written decode loop: prompt-lookup drafts and a reused prefix cache must not change the output."""

import pytest

torch = pytest.importorskip("torch")
from transformers import AutoModelForCausalLM, DynamicCache, Qwen2Config  # noqa: E402

from docqa.generate.hf import lookup_decode, lookup_draft  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    """A 2-layer random Qwen2 in float32 (exact arithmetic order matters less than in bf16)."""
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return AutoModelForCausalLM.from_config(config).eval()


PROMPT = [3, 4, 5, 6, 7, 3, 4, 5, 9, 10, 11, 3, 4]


def greedy_reference(model, prompt: list[int], n: int) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(ids, max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt) :].tolist()


def decode(model, prompt: list[int], n: int, draft: int, prefix: int = 0, eos=frozenset()) -> list[list[int]]:
    ids = torch.tensor([prompt])
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        if prefix:
            model(input_ids=ids[:, :prefix], cache=cache)
        return list(lookup_decode(model, ids, cache, n, set(eos), draft))


@pytest.mark.parametrize("draft", [0, 3, 10])
@pytest.mark.parametrize("prefix", [0, 5])
def test_same_tokens_as_greedy_generate(tiny, draft, prefix):
    want = greedy_reference(tiny, PROMPT, 30)
    steps = decode(tiny, PROMPT, 30, draft, prefix)
    assert [t for step in steps for t in step] == want
    if draft:  # drafting accepted something, so it took fewer forward passes than tokens
        assert len(steps) < len(want)
    else:
        assert all(len(step) == 1 for step in steps)


def test_stops_at_eos_without_yielding_it(tiny):
    want = greedy_reference(tiny, PROMPT, 30)
    eos = want[4]
    got = [t for step in decode(tiny, PROMPT, 30, 10, eos=frozenset({eos})) for t in step]
    assert got == want[: want.index(eos)]


def test_lookup_draft_prefers_longest_latest_match():
    assert lookup_draft([1, 2, 9, 1, 2, 3, 7, 1, 2], 3) == [3, 7, 1]  # the 2-gram [1, 2] last seen before 3
    assert lookup_draft([4, 5, 6, 5], 2) == [6, 5]  # falls back to the 1-gram [5]
    assert lookup_draft([4, 5, 6], 2) == []
    assert lookup_draft([4, 5, 4], 0) == []


def test_auto_dtype_is_bf16_only_where_the_cpu_multiplies_it(monkeypatch):
    from docqa import cpu

    monkeypatch.setattr(cpu, "cpu_has_fast_bf16", lambda: False)  # an AVX2-only CPU: bf16 is emulated there
    assert cpu.resolve_dtype("auto") == "float32" and cpu.resolve_dtype("auto", gpu=True) == "bfloat16"
    monkeypatch.setattr(cpu, "cpu_has_fast_bf16", lambda: True)  # AVX512-BF16 or AMX
    assert cpu.resolve_dtype("auto") == "bfloat16" and cpu.resolve_dtype("float32") == "float32"
