"""Text tasks for the tiny causal LMs: generated "domains" over a character vocabulary.

Each sample is `prompt>answer;`. Answers are a deterministic function of the prompt, so
teacher-forced accuracy on the answer characters is a real task score. Pretraining mixes
a few domains; fine-tuning domains are different ones (a real shift, not more of the same).
"""

from __future__ import annotations

import functools
import string
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

PAD, BOS = 0, 1
CHARS = string.digits + string.ascii_lowercase + " +-*>;"
VOCAB_SIZE = 2 + len(CHARS)  # 44
# BERT's [MASK]: one more id than the causal LMs know, so their vocabulary (and every
# zoo built before BERT joined) stays as it was.
MASK = VOCAB_SIZE
MLM_VOCAB_SIZE = VOCAB_SIZE + 1
MAX_LEN = 24  # BOS + prompt + '>' + answer + ';', padded
EVAL_SIZE = 256
TRAIN_SIZE = 2048
_STOI = {c: i + 2 for i, c in enumerate(CHARS)}


def _word(rng: np.random.Generator, lo: int = 3, hi: int = 7) -> str:
    return "".join(rng.choice(list(string.ascii_lowercase), rng.integers(lo, hi + 1)))


def _count(rng: np.random.Generator) -> tuple[str, str]:
    a = int(rng.integers(0, 90))
    return f"{a} {a + 1}", f"{a + 2} {a + 3}"


def _alpha(rng: np.random.Generator) -> tuple[str, str]:
    i = int(rng.integers(0, 22))
    letters = string.ascii_lowercase
    return f"{letters[i]} {letters[i + 1]}", f"{letters[i + 2]} {letters[i + 3]}"


def _shift(rng: np.random.Generator) -> tuple[str, str]:
    w = _word(rng)
    return w, "".join(chr((ord(c) - 97 + 1) % 26 + 97) for c in w)


def _arith(rng: np.random.Generator) -> tuple[str, str]:
    a, b = (int(v) for v in rng.integers(0, 50, 2))
    return f"{a}+{b}", str(a + b)


def _sub(rng: np.random.Generator) -> tuple[str, str]:
    a, b = sorted(int(v) for v in rng.integers(0, 99, 2))
    return f"{b}-{a}", str(b - a)


def _repeat(rng: np.random.Generator) -> tuple[str, str]:
    w = _word(rng, 2, 4)
    return f"{w}*2", w + w


DOMAINS: dict[str, Callable[[np.random.Generator], tuple[str, str]]] = {
    "copy": lambda rng: (w := _word(rng), w),
    "count": _count,
    "alpha": _alpha,
    "reverse": lambda rng: (w := _word(rng), w[::-1]),
    "sort": lambda rng: (w := _word(rng), "".join(sorted(w))),
    "shift": _shift,
    "arith": _arith,
    "sub": _sub,
    "repeat": _repeat,
}
# Pretraining mixture: the root learns the format and easy domains.
GENERAL = ("copy", "count", "alpha")
TEXT_TASKS = ("text-general", *(f"text-{d}" for d in DOMAINS))


def encode(prompt: str, answer: str) -> tuple[list[int], int]:
    """Token ids (BOS first) and the index where the answer starts."""
    ids = [BOS] + [_STOI[c] for c in prompt + ">"]
    start = len(ids)
    return ids + [_STOI[c] for c in answer + ";"], start


@dataclass(frozen=True)
class TextTask:
    name: str
    family: str = "text"

    @property
    def domains(self) -> tuple[str, ...]:
        domain = self.name.removeprefix("text-")
        return GENERAL if domain == "general" else (domain,)

    @functools.cached_property
    def _data(self) -> dict[str, torch.Tensor]:
        # Fixed seed per task name: the same data for every zoo, eval disjoint from train.
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        samples: dict[tuple[str, str], None] = {}
        for _ in range(4 * (TRAIN_SIZE + EVAL_SIZE)):
            domain = self.domains[int(rng.integers(len(self.domains)))]
            samples.setdefault(DOMAINS[domain](rng))
            if len(samples) == TRAIN_SIZE + EVAL_SIZE:
                break
        pairs = list(samples)
        eval_pairs, train_pairs = pairs[:EVAL_SIZE], pairs[EVAL_SIZE:]
        out = {}
        for part, chosen in (("train", train_pairs), ("eval", eval_pairs)):
            ids, answer_mask = _pad([encode(*p) for p in chosen])
            out[f"{part}_ids"], out[f"{part}_answer"] = ids, answer_mask
        return out

    def train_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        ids, answer = self._data["train_ids"], self._data["train_answer"]
        idx = torch.randint(len(ids), (min(batch_size, len(ids)),), generator=gen)
        # Loss on the answer only, as in supervised fine-tuning: prompts are random
        # strings, and fitting them drowns the task (the model shifts labels itself).
        return {"input_ids": ids[idx], "labels": ids[idx].masked_fill(~answer[idx], -100)}

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, labels = batch["input_ids"], batch["labels"]
        if is_masked_lm(model):  # fill in the masked answer, seeing the whole prompt
            ids = ids.masked_fill(labels != -100, MASK)
        return model(input_ids=ids, attention_mask=(ids != PAD).long(), labels=labels).loss

    @torch.no_grad()
    def score(self, model: torch.nn.Module) -> float:
        """Teacher-forced accuracy on the answer characters (and the closing ';'); for a
        masked LM, accuracy on the answer characters filled in at once."""
        ids, answer = self._data["eval_ids"], self._data["eval_answer"]
        if is_masked_lm(model):
            masked = ids.masked_fill(answer, MASK)
            logits = model(input_ids=masked, attention_mask=(ids != PAD).long()).logits
            return float(((logits.argmax(-1) == ids) & answer).sum() / answer.sum())
        logits = model(input_ids=ids, attention_mask=(ids != PAD).long()).logits
        pred = logits[:, :-1].argmax(-1)  # position t predicts token t+1
        target, mask = ids[:, 1:], answer[:, 1:]
        return float(((pred == target) & mask).sum() / mask.sum())


def is_masked_lm(model: torch.nn.Module) -> bool:
    """BERT-style models (bidirectional, trained to fill masks); PEFT wrappers included."""
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) == "bert"


def _pad(encoded: list[tuple[list[int], int]]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(encoded), MAX_LEN), PAD, dtype=torch.long)
    answer = torch.zeros((len(encoded), MAX_LEN), dtype=torch.bool)
    for row, (seq, start) in enumerate(encoded):
        ids[row, : len(seq)] = torch.tensor(seq[:MAX_LEN])
        answer[row, start : len(seq)] = True
    return ids, answer
