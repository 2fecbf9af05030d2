"""Prompt token estimate and history selection within a budget.

`tiktoken` cannot be used here: it downloads its BPE tables at first use, and engines often run
without internet access (and the model behind `OPENAI_BASE_URL` may not be an OpenAI model at
all). The estimate is the usual rule of thumb for English text — one token per 4 bytes of
UTF-8 (4 characters of ASCII), rounded up — plus 4 tokens of framing per message and 3 per
prompt, as in OpenAI's chat accounting. UTF-8 bytes rather than characters keep the estimate
on the safe side for non-Latin scripts, whose characters take 2 to 4 bytes and about one token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

TOKENS_PER_MESSAGE = 4
TOKENS_PER_PROMPT = 3


class ChatMessage(TypedDict):
    role: str
    content: str


def estimate_tokens(text: str) -> int:
    """Estimated tokens of `text` (ceil(UTF-8 bytes / 4))."""
    return math.ceil(len(text.encode("utf-8")) / 4)


def estimate_message_tokens(message: ChatMessage) -> int:
    return estimate_tokens(message["content"]) + TOKENS_PER_MESSAGE


def estimate_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    """Estimated prompt tokens of a whole Chat Completions request."""
    return TOKENS_PER_PROMPT + sum(estimate_message_tokens(m) for m in messages)


def fit_history(history: Sequence[ChatMessage], available: int) -> list[ChatMessage]:
    """The history that fits in `available` tokens: every system message, then the newest
    other messages that still fit, oldest dropped first; chronological order kept.

    Only a contiguous newest run is kept (once one message does not fit, nothing older is
    added), so the model never sees a gap in the recent conversation.
    """
    system_cost = sum(estimate_message_tokens(m) for m in history if m["role"] == "system")
    room = available - system_cost
    keep: set[int] = {i for i, m in enumerate(history) if m["role"] == "system"}
    for i in range(len(history) - 1, -1, -1):
        if i in keep:
            continue
        cost = estimate_message_tokens(history[i])
        if cost > room:
            break
        room -= cost
        keep.add(i)
    return [m for i, m in enumerate(history) if i in keep]
