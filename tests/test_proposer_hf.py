"""The hf proposer on a tiny random-weight Llama saved to a temporary directory, with a tokenizer built locally."""

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

from llm2.proposers import make_proposer  # noqa: E402
from llm2.proposers.base import Message, ProposalRequest, ProposerError  # noqa: E402
from llm2.proposers.hf import HFProposer  # noqa: E402

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|> {% endif %}")
CORPUS = [
    "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):",
    "    x = beta * (policy_chosen_logps - policy_rejected_logps)",
    '    return -F.logsigmoid(x)  {"thought": "a hinge", "name": "hinge", "code": "torch.relu(1 - x)"}',
    "system user assistant propose a new loss for preference optimisation with a margin and a temperature",
]
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llama")
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", pad_token="<pad>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=None,
                         pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = None  # never stop early: every reply has exactly NEW_TOKENS tokens
    model.save_pretrained(path)
    return str(path), tokenizer


REQUEST = ProposalRequest((Message("system", "You invent losses."), Message("user", "Propose one.")), (), 1.0, 7)


def test_reply_has_the_expected_tokens_and_is_seeded(tiny_model):
    path, tokenizer = tiny_model
    proposer = make_proposer("hf", model=path, max_new_tokens=NEW_TOKENS, device="cpu")
    assert isinstance(proposer, HFProposer)
    reply = proposer.propose(REQUEST)
    prompt = tokenizer.apply_chat_template([{"role": "system", "content": "You invent losses."},
                                            {"role": "user", "content": "Propose one."}],
                                           add_generation_prompt=True, tokenize=True, return_dict=True)
    assert reply.prompt_tokens == len(prompt["input_ids"])
    assert reply.completion_tokens == NEW_TOKENS
    assert reply.text.strip() and reply.model == path
    assert proposer.propose(REQUEST) == reply  # same seed, same reply
    other = proposer.propose(ProposalRequest(REQUEST.messages, (), 1.0, 8))
    assert other.text != reply.text


def test_sampling_leaves_the_callers_rng_alone_and_greedy_is_deterministic(tiny_model):
    path, _ = tiny_model
    proposer = HFProposer(path, temperature=0.0, max_new_tokens=NEW_TOKENS, device="cpu")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    greedy_a = proposer.propose(REQUEST)
    assert torch.equal(torch.rand(3), expected)
    greedy_b = proposer.propose(ProposalRequest(REQUEST.messages, (), 1.0, 99))  # temperature fixed at 0
    assert greedy_a.text == greedy_b.text


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ProposerError, match="could not load the model"):
        HFProposer(str(tmp_path / "nothing-here"), device="cpu")
