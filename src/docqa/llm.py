"""Generators: chat messages in, a stream of text deltas out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from docqa.errors import ModelError

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


class Generator(Protocol):
    name: str

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """Yield the reply's text in pieces as it is generated (greedy decoding)."""
        ...

    def count_tokens(self, messages: list[Message]) -> int: ...


class TransformersGenerator:
    """A causal LM run in-process with transformers, on the CPU unless a GPU is present."""

    def __init__(
        self, name: str, path: str, dtype: str = "bfloat16", threads: int | None = None, prompt_lookup_tokens: int = 10
    ) -> None:
        """`prompt_lookup_tokens`: draft that many tokens by copying from the prompt (0: off).

        A grounded answer mostly repeats phrases of its passages, so n-gram lookup in the prompt
        drafts tokens for free and one forward pass verifies several: decode runs several times
        faster with the same greedy output, and no second model is needed.
        """
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.name = name
        self.prompt_lookup_tokens = prompt_lookup_tokens
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(self.device)
        except OSError as exc:
            raise ModelError(
                f"could not load the language model '{path}' ({str(exc).splitlines()[0]})",
                "check llm_model; a hub id needs network access and offline = false",
            ) from None
        self.model.eval()
        self._lock = threading.Lock()  # one generation at a time per model

    def _inputs(self, messages: list[Message]):
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)

    def count_tokens(self, messages: list[Message]) -> int:
        return int(self._inputs(messages)["input_ids"].shape[1])

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
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
