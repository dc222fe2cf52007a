# tries: an attribute chain through modules torch re-exports (torch.textwrap.re.enum.bltns is the builtins module) to exec, whose code then writes into the canary directory; no name in it was on the old deny-lists
# expect: invalid static accesses 'torch.textwrap'
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    torch.textwrap.re.enum.bltns.exec("open('@CANARY@/pwned-by-attribute-chain', 'w').close()")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
