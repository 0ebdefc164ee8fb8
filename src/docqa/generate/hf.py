"""The in-process generator: a causal LM run with transformers, with docqa's own greedy decode loop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from docqa.cpu import resolve_dtype
from docqa.errors import ModelError
from docqa.generate import Message


class TransformersGenerator:
    """A causal LM run in-process with transformers, on the CPU unless a GPU is present."""

    def __init__(
        self,
        name: str,
        path: str,
        dtype: str = "auto",
        threads: int | None = None,
        prompt_lookup_tokens: int = 10,
        reuse_prefix: bool = True,
    ) -> None:
        """`prompt_lookup_tokens`: draft that many tokens by copying from the prompt (0: off).

        A grounded answer mostly repeats phrases of its passages, so n-gram lookup in the prompt
        drafts tokens for free and one forward pass verifies several: decode runs several times
        faster with the same greedy output, and no second model is needed.

        `reuse_prefix`: keep the KV cache of each system message (the same for every question) and
        start each answer from a copy of it, so prefill only covers the passages and the question.
        """
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.name = name
        self.prompt_lookup_tokens = prompt_lookup_tokens
        self.reuse_prefix = reuse_prefix
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.dtype = resolve_dtype(dtype, gpu=self.device == "cuda")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, self.dtype)).to(self.device)
        except OSError as exc:
            raise ModelError(
                f"could not load the language model '{path}' ({str(exc).splitlines()[0]})",
                "check llm_model; a hub id needs network access and offline = false",
            ) from None
        self.model.eval()
        self._lock = threading.Lock()  # one generation at a time per model
        self._prefixes: dict[str, tuple[Any, Any]] = {}  # system message -> (token ids, KV cache)
        config = self.model.generation_config
        # The decode loop below is plain greedy; a model whose generation config asks for repetition
        # penalties or banned tokens goes through transformers' generate instead.
        processors = (config.no_repeat_ngram_size, config.bad_words_ids, config.suppress_tokens)
        self._plain_greedy = config.repetition_penalty in (None, 1.0) and not any(processors)
        eos = config.eos_token_id
        self._eos = {eos} if isinstance(eos, int) else set(eos or [])
        if self.tokenizer.eos_token_id is not None:
            self._eos.add(self.tokenizer.eos_token_id)

    def _inputs(self, messages: list[Message]):
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)

    def count_tokens(self, messages: list[Message]) -> int:
        return int(self._inputs(messages)["input_ids"].shape[1])

    def prefix_cache(self, messages: list[Message], input_ids: Any) -> Any | None:
        """A fresh copy of the system message's KV cache when `input_ids` starts with it, else None.

        Computed once per distinct system message (the answer and the rewrite prompts each have one);
        generation extends the copy, so the stored cache stays clean. None (full prefill) whenever
        the token ids disagree.
        """
        import copy

        import torch

        if not self.reuse_prefix or not messages or messages[0]["role"] != "system":
            return None
        key = messages[0]["content"]
        if key not in self._prefixes:
            ids = self.tokenizer.apply_chat_template(messages[:1], return_tensors="pt", return_dict=True)["input_ids"]
            ids = ids.to(self.device)
            with torch.inference_mode():
                cache = self.model(input_ids=ids, use_cache=True).past_key_values
            if len(self._prefixes) >= 4:
                self._prefixes.pop(next(iter(self._prefixes)))
            self._prefixes[key] = (ids, cache)
        ids, cache = self._prefixes[key]
        n = ids.shape[1]
        if n >= input_ids.shape[1] or not torch.equal(ids[0], input_ids[0, :n]):
            return None
        return copy.deepcopy(cache)

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        if not self._plain_greedy:
            yield from self._stream_hf(messages, max_new_tokens)
            return
        import torch
        from transformers import DynamicCache

        with self._lock:
            input_ids = self._inputs(messages)["input_ids"]
            cache = self.prefix_cache(messages, input_ids)
            if cache is None:
                cache = DynamicCache(config=self.model.config)
            tokens: list[int] = []
            shown = 0
            with torch.inference_mode():
                for new in lookup_decode(
                    self.model, input_ids, cache, max_new_tokens, self._eos, self.prompt_lookup_tokens
                ):
                    tokens += new
                    text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                    if len(text) > shown and not text.endswith("\ufffd"):  # hold back a split UTF-8 character
                        yield text[shown:]
                        shown = len(text)

    def _stream_hf(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """transformers' own generate (with its logits processors), for models that are not plain greedy."""
        import torch
        from transformers import TextIteratorStreamer

        inputs = self._inputs(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []
        lookup = {"prompt_lookup_num_tokens": self.prompt_lookup_tokens} if self.prompt_lookup_tokens else {}

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(
                        **inputs,
                        streamer=streamer,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        temperature=None,
                        top_p=None,
                        top_k=None,
                        pad_token_id=self.tokenizer.eos_token_id,
                        **lookup,
                    )
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)
                streamer.end()

        with self._lock:
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            for piece in streamer:
                if piece:
                    yield piece
            thread.join()
        if errors:
            raise errors[0]


def lookup_draft(ids: list[int], max_tokens: int, max_ngram: int = 3) -> list[int]:
    """Draft tokens by prompt lookup: what followed the latest earlier occurrence of the last n-gram.

    Longer n-grams are tried first. A grounded answer copies phrases from its passages, so these
    drafts are often right, and verifying them costs one forward pass for several tokens.

    >>> lookup_draft([5, 6, 7, 8, 1, 5, 6], 2)
    [7, 8]
    >>> lookup_draft([1, 2, 3], 4)
    []
    """
    if max_tokens <= 0:
        return []
    for n in range(min(max_ngram, len(ids) - 1), 0, -1):
        tail = ids[-n:]
        for start in range(len(ids) - n - 1, -1, -1):
            if ids[start : start + n] == tail:
                return ids[start + n : start + n + max_tokens]
    return []


def lookup_decode(
    model: Any, input_ids: Any, cache: Any, max_new_tokens: int, eos: set[int], draft_tokens: int
) -> Iterator[list[int]]:
    """Greedy decoding with prompt-lookup drafts, yielding the new token ids of each step.

    `cache` may already hold the KV of a prefix of `input_ids` (a reused system prompt): only the
    rest is prefilled. Each step runs the tokens not yet cached plus a draft through the model,
    keeps the draft up to its first disagreement with the model's own greedy choice, adds that
    choice, and crops the cache back. The output is the model's greedy output; drafts only
    change how many forward passes it takes. Stops at an end-of-sequence token (not yielded).
    """
    import torch

    if hasattr(cache, "activate_past_recording"):
        cache.activate_past_recording()  # lets sliding-window layers roll back rejected drafts
    ids = input_ids[0].tolist()
    pending = ids[cache.get_seq_length() :]
    produced = 0
    while produced < max_new_tokens:
        draft = lookup_draft(ids, min(draft_tokens, max_new_tokens - produced - 1))
        x = torch.tensor([pending + draft], device=input_ids.device)
        logits = model(input_ids=x, cache=cache, use_cache=True, logits_to_keep=len(draft) + 1).logits
        choice = logits[0].argmax(-1).tolist()
        accepted = 0
        while accepted < len(draft) and draft[accepted] == choice[accepted]:
            accepted += 1
        if len(draft) > accepted:
            cache.crop(accepted - len(draft))  # drop the KV of rejected draft tokens
        new = draft[:accepted] + [choice[accepted]]
        stop = next((i for i, t in enumerate(new) if t in eos), None)
        if stop is not None:
            if stop:
                yield new[:stop]
            return
        ids += new
        pending = new[-1:]
        produced += len(new)
        yield new
