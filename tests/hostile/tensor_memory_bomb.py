# tries: one huge tensor allocation (4 TiB)
# expect: invalid|failed contract allocate
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    waste = torch.ones(2 ** 40)
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
