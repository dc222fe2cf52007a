"""A factory as an ordinary proposer (``--proposer factory``): a refined factory of a self-develop run, or any
causal LM, proposing in ``llm2 discover``.

A factory trained on its own prompt (the offline default factory and its refinements) is asked with that prompt,
whatever the conversation says: it has never seen any other. A chat or base model gets the conversation. Bare code
is wrapped in the reply JSON the loop parses.
"""

from __future__ import annotations

import json

from llm2.proposers.base import ProposalRequest, ProposerError, Reply
from llm2.selfdev.factory import Factory, FactoryError
from llm2.selfdev.reading import read_completion


class FactoryProposer:
    name = "factory"

    def __init__(self, model: str | None = None, seed: int = 0, max_new_tokens: int = 512, device: str = "auto"):
        if not model:
            raise ProposerError("the factory proposer needs a model: a factory checkpoint directory "
                                "(DIR/selfdev/iteration-K/factory) or a Hugging Face causal LM")
        try:
            self.factory = Factory.load(model, device=device)
        except FactoryError as exc:
            raise ProposerError(str(exc)) from None
        self.model, self.seed, self.max_new_tokens = model, seed, max_new_tokens

    def propose(self, request: ProposalRequest) -> Reply:
        prompt = self.factory.prompt_for(request.messages)
        try:
            sample = self.factory.sample(prompt, 1, request.temperature, self.seed * 1_000_003 + request.seed,
                                         self.max_new_tokens)[0]
        except FactoryError as exc:
            raise ProposerError(str(exc)) from None
        read = read_completion(sample.text)
        text = sample.text
        if read.code and not read.thought:  # bare code: the loop parses the reply JSON
            text = json.dumps({"thought": f"written by the factory {self.model}", "name": read.name,
                               "code": read.code})
        return Reply(text, prompt_tokens=sample.prompt_tokens, completion_tokens=sample.completion_tokens,
                     model=str(self.model), finish_reason=sample.finish_reason)
