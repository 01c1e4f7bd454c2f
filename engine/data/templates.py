"""Chat templates rendered in Python, without Jinja, where the template is recognised exactly.

Rendering a conversation through Jinja costs more than tokenizing it, and locating the trained
turns that way renders it again up to every assistant turn. The templates most models use are a
concatenation of one segment per message: ChatML (`<|im_start|>role\\n…<|im_end|>\\n`) and Llama 3
(`<|start_header_id|>role<|end_header_id|>\\n\\n…<|eot_id|>`), and tunelab's own plain, chatml and
alpaca. When a tokenizer's template is one of them, character for character (its SHA-256 is in
KNOWN), the conversation is rendered once here and every turn's place in the text is known as
it is written. Any other template is rendered by Jinja (engine.data.render), as before;
tests/test_data_templates.py renders many conversations both ways and compares them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from tunelab.engine.errors import DataError

# A conversation the template cannot render as the concatenation of its turns (Llama 3 writes
# its BOS before the first message, but a generation prompt without messages has none)
NOT_CONCATENATED = ("the chat template does not render a conversation as the concatenation of its "
                    "turns (it rewrites earlier turns), so the trained tokens cannot be located; "
                    "set data.template to plain, chatml or alpaca")


@dataclass(frozen=True)
class Plan:
    """An example's text and, for each assistant turn, where its prompt and its answer end in it
    (every prompt and every answer is a prefix of the text) and whether it is trained."""

    text: str
    turns: list[tuple[int, int, bool]]


@dataclass(frozen=True)
class Native:
    """A template whose rendering is one segment per message, each made from the message alone
    (and whether it is the first), with the opening of an assistant turn as generation prompt."""

    family: str  # chatml | llama3 | plain | chatml-eos | alpaca

    def segment(self, role: str, content: str, first: bool, specials: dict[str, str]) -> tuple[str, str]:
        """(the segment's text up to where the message's own text starts, the rest of it)."""
        if self.family == "chatml":
            return f"<|im_start|>{role}\n", f"{content}<|im_end|>\n"
        if self.family == "chatml-eos":
            eos = specials.get("eos_token", "")
            after = eos if role == "assistant" and eos != "<|im_end|>" else ""
            return f"<|im_start|>{role}\n", f"{content}<|im_end|>{after}\n"
        if self.family == "llama3":
            if first and "bos_token" not in specials:
                raise DataError("the chat template writes bos_token, which this tokenizer does not have")
            bos = specials["bos_token"] if first else ""
            return f"{bos}<|start_header_id|>{role}<|end_header_id|>\n\n", f"{content.strip()}<|eot_id|>"
        if self.family == "plain":
            if role == "assistant":
                return "", content + specials.get("eos_token", "")
            return "", content + ("\n\n" if role == "system" else "\n")
        # alpaca: the system turn is the opening line (written by `opening`); other roles nothing
        if role == "user":
            return "### Instruction:\n", content + "\n\n### Response:\n"
        if role == "assistant":
            return "", content + specials.get("eos_token", "") + "\n\n"
        return "", ""

    def start(self, messages: list[dict[str, str]]) -> str:
        """What the template writes before the first message."""
        if self.family != "alpaca":
            return ""
        if messages and messages[0]["role"] == "system":
            return messages[0]["content"] + "\n\n"
        return ("Below is an instruction that describes a task. Write a response that "
                "appropriately completes the request.\n\n")

    def opening(self) -> str:
        """The generation prompt: what opens an assistant turn at inference."""
        if self.family in ("chatml", "chatml-eos"):
            return "<|im_start|>assistant\n"
        if self.family == "llama3":
            return "<|start_header_id|>assistant<|end_header_id|>\n\n"
        return ""  # plain and alpaca have none: the prompt ends where the answer starts

    def plan(self, messages: list[dict[str, str]], trained: list[bool], specials: dict[str, str],
             bos: str) -> Plan:
        """The text and the turns, as engine.data.render finds them by rendering each prefix
        through Jinja; `bos` is written first (a named template's, when the tokenizer adds one).
        The first message is not the assistant's: there the families differ (Llama 3's prompt
        alone has no BOS, alpaca's fails), and Jinja says how."""
        parts = [bos, self.start(messages)]
        at = len(bos) + len(parts[1])
        turns = []
        for i, m in enumerate(messages):
            head, rest = self.segment(m["role"], m["content"], i == 0, specials)
            parts += (head, rest)
            if m["role"] == "assistant":  # never the first (see engine.data.render._native)
                turns.append((at + len(head), at + len(head) + len(rest), trained[i]))
            at += len(head) + len(rest)
        return Plan("".join(parts), turns)

    def prompt(self, messages: list[dict[str, str]], specials: dict[str, str], bos: str) -> str:
        """The generation prompt after these messages (bos first, as in `plan`)."""
        parts = [bos, self.start(messages)]
        for i, m in enumerate(messages):
            parts += self.segment(m["role"], m["content"], i == 0, specials)
        return "".join(parts) + self.opening()


# The SHA-256 of each recognised template text -> its family. Only these exact texts are rendered
# here: a template that differs by one character goes through Jinja.
_TEXTS = {
    "chatml": [
        # the minimal ChatML many models ship (and bench/make_chat_data.py writes)
        "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
        " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\\n' }}{% endif %}",
    ],
    "llama3": [
        # Meta-Llama-3-8B-Instruct's (and 70B's) template
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
        "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim"
        " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
        "{{ content }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
        # the same, written with attribute access
        "{% for m in messages %}{% set content = '<|start_header_id|>' + m.role + '<|end_header_id|>"
        "\\n\\n' + m.content | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
        "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
        "{% endif %}",
    ],
}


def _digest(template: str) -> str:
    return hashlib.sha256(template.encode()).hexdigest()


def known(named: dict[str, str]) -> dict[str, str]:
    """Digest -> family of every recognised template, tunelab's own named ones included."""
    found = {_digest(text): family for family, texts in _TEXTS.items() for text in texts}
    families = {"plain": "plain", "chatml": "chatml-eos", "alpaca": "alpaca"}
    found.update({_digest(named[name]): family for name, family in families.items()})
    return found


@lru_cache(maxsize=64)
def native(template: str, digests: tuple[tuple[str, str], ...]) -> Native | None:
    """The native renderer of a template text, or None (Jinja renders it)."""
    family = dict(digests).get(_digest(template))
    return Native(family) if family else None
