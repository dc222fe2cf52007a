"""A local Hugging Face causal LM (a path or a hub id already in the local cache) as the proposer.

The conversation goes through the tokenizer's chat template; sampling uses the request's temperature (unless one
is fixed here) and the request's seed, in a forked RNG so the caller's random state is left alone.
"""

from __future__ import annotations

from llm2.proposers.base import Message, ProposalRequest, ProposerError, Reply


class HFProposer:
    name = "hf"

    def __init__(self, model: str, temperature: float | None = None, max_new_tokens: int = 1024,
                 device: str = "auto", dtype: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name = model
        self.temperature = temperature  # None: each request's temperature
        self.max_new_tokens = max_new_tokens
        self.device = _pick_device(device)
        chosen_dtype = torch.float32 if self.device == "cpu" and dtype == "auto" else dtype
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForCausalLM.from_pretrained(model, dtype=chosen_dtype).to(self.device)
        except (OSError, ValueError, ImportError) as exc:
            raise ProposerError(f"could not load the model {model!r}: {exc}") from None
        self.model.eval()

    def propose(self, request: ProposalRequest) -> Reply:
        import torch

        input_ids = self._prompt_ids(request.messages).to(self.device)
        temperature = request.temperature if self.temperature is None else self.temperature
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        devices = [self.device] if self.device.startswith("cuda") else []
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(request.seed)
                output = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                             max_new_tokens=self.max_new_tokens, pad_token_id=pad_id, **sampling)
        except (RuntimeError, ValueError) as exc:
            raise ProposerError(f"generation with {self.model_name!r} failed: {exc}") from None
        completion = output[0, input_ids.shape[1]:]
        text = self.tokenizer.decode(completion, skip_special_tokens=True)
        return Reply(text, prompt_tokens=int(input_ids.shape[1]), completion_tokens=int(completion.shape[0]),
                     model=self.model_name)

    def _prompt_ids(self, messages: tuple[Message, ...]):
        chat = [{"role": m.role, "content": m.content} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            encoded = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True,
                                                         return_dict=True, return_tensors="pt")
            return encoded["input_ids"]
        # A base model without a chat template: a plain transcript ending where the assistant speaks.
        transcript = "".join(f"{m['role']}: {m['content']}\n" for m in chat) + "assistant: "
        return self.tokenizer(transcript, return_tensors="pt")["input_ids"]


def _pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
