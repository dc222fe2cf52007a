"""A tiny, offline stand-in for the preference-hf task's real inputs: a randomly initialised Llama saved with
``save_pretrained``, a word-level tokenizer built from local text, preference pairs in a JSONL file, a reward
model and judge questions. For tests, benchmarks and trying the task without a download:

    python -m llm2.tasks.preference_hf.tiny DIR
    llm2 evaluate --task preference-hf -o model=DIR/model -o dataset=DIR/pairs.jsonl -o lr=0.001 -o max_steps=8 \\
        -o eval_size=16 -o batch_size=4 --objective dpo

The pairs have a learnable preference: chosen completions use one half of the words, rejected ones the other.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

NEUTRAL = "the a cat dog bird sun rain hill tree road river house day night".split()
LIKED = "kind warm bright clear calm gentle true fair".split()
DISLIKED = "cold dark rude harsh grim vague false cruel".split()
ROLES = ["user", "assistant", ":"]
# chat pairs (lists of messages) go through the tokenizer's chat template, as with a real chat model
CHAT_TEMPLATE = ("{% for message in messages %}{{ message['role'] }} : {{ message['content'] }}</s>{% endfor %}"
                 "{% if add_generation_prompt %}assistant :{% endif %}")


@dataclass(frozen=True)
class TinySetup:
    model: Path
    dataset: Path
    reward_model: Path
    questions: Path


def pairs(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def words(vocabulary: list[str], low: int, high: int) -> str:
        return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(low, high)))

    return [{"prompt": words(NEUTRAL, 2, 4), "chosen": " " + words(LIKED, 2, 5),
             "rejected": " " + words(DISLIKED, 2, 5)} for _ in range(count)]


def chat_pairs(count: int, seed: int = 0) -> list[dict]:
    """The same pairs as conversations, without a prompt field (TRL takes the shared first turn as the prompt)."""
    return [{side: [{"role": "user", "content": row["prompt"]},
                    {"role": "assistant", "content": row[side].strip()}] for side in ("chosen", "rejected")}
            for row in pairs(count, seed)]


def build_tiny_setup(folder: Path, count: int = 96, seed: int = 0) -> TinySetup:
    """Write everything into ``folder``; the same seed gives the same files."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    rows = pairs(count, seed)
    dataset = folder / "pairs.jsonl"
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    questions = folder / "questions.jsonl"
    questions.write_text("".join(json.dumps({"question_id": i, "category": "tiny", "turns": [text]}) + "\n"
                                 for i, text in enumerate(["the cat", "a day", "rain on the hill", "the road",
                                                           "a river", "night"])), encoding="utf-8")
    word_level = Tokenizer(models.WordLevel(unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    word_level.train_from_iterator(NEUTRAL + LIKED + DISLIKED + ROLES,
                                   trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<s>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="</s>",
                                        bos_token="<s>", unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    config = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                  bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    reward = LlamaForSequenceClassification(LlamaConfig(**config, num_labels=1))
    reward.save_pretrained(folder / "reward")
    tokenizer.save_pretrained(folder / "reward")
    return TinySetup(folder / "model", dataset, folder / "reward", questions)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m llm2.tasks.preference_hf.tiny DIR")
    setup = build_tiny_setup(Path(sys.argv[1]))
    print(f"model {setup.model}\ndataset {setup.dataset}\nreward model {setup.reward_model}\n"
          f"judge questions {setup.questions}")
