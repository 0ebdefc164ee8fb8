"""The time budget: measured generation speeds, and the optional work skipped to stay inside it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from docqa.retrieve.fusion import Retrieval
from docqa.types import Passage


@dataclass
class SpeedModel:
    """Running estimates of this machine's generation speed, from the answers so far.

    Used only with a time budget, to skip optional work (a rewrite call, low-ranked passages)
    when the estimate says the answer would overrun.
    """

    prefill_tok_s: float | None = None
    decode_tok_s: float | None = None
    answer_tokens: float = 40.0  # typical answer length; updated as answers come in
    prompt_tokens: float = 700.0
    weight: float = 0.3  # exponential moving average: recent answers count most

    def observe(self, prompt_tokens: int, answer_tokens: int, prefill_s: float, generate_s: float) -> None:
        def ema(old: float | None, new: float) -> float:
            return new if old is None else (1 - self.weight) * old + self.weight * new

        if prefill_s > 0:
            self.prefill_tok_s = ema(self.prefill_tok_s, prompt_tokens / prefill_s)
        decode_s = generate_s - prefill_s
        if answer_tokens > 1 and decode_s > 0:
            self.decode_tok_s = ema(self.decode_tok_s, (answer_tokens - 1) / decode_s)
        self.answer_tokens = ema(self.answer_tokens, answer_tokens)
        self.prompt_tokens = ema(self.prompt_tokens, prompt_tokens)

    def estimate_s(self, prompt_tokens: float) -> float | None:
        """Seconds to answer a prompt of this size; None until an answer has been measured.

        >>> m = SpeedModel(prefill_tok_s=200.0, decode_tok_s=10.0, answer_tokens=41)
        >>> m.estimate_s(400)
        6.0
        """
        if not self.prefill_tok_s or not self.decode_tok_s:
            return None
        return prompt_tokens / self.prefill_tok_s + (self.answer_tokens - 1) / self.decode_tok_s

    def over_budget(self, budget_s: float, extra_calls: int = 0) -> bool:
        """Would a typical answer plus `extra_calls` short model calls (about 60 tokens out) overrun?"""
        answer = self.estimate_s(self.prompt_tokens)
        if answer is None or self.prefill_tok_s is None or self.decode_tok_s is None:
            return False
        extra = extra_calls * (250 / self.prefill_tok_s + 20 / self.decode_tok_s)
        return answer + extra > budget_s


def fit_budget(
    found: Retrieval,
    seconds_left: float,
    speed: SpeedModel,
    prompt_tokens: Callable[[list[Passage]], int],
    notices: list[str],
) -> Retrieval:
    """Drop the lowest-ranked passages (down to 2) while the measured speeds say the answer would overrun."""
    passages = list(found.passages)
    while len(passages) > 2:
        estimate = speed.estimate_s(prompt_tokens(passages))
        if estimate is None or estimate <= seconds_left:
            break
        passages.pop()
    if len(passages) < len(found.passages):
        notices.append(f"Used {len(passages)} of {len(found.passages)} passages to stay in the time budget.")
    return Retrieval(passages, found.best_score)
