# tries: a loss unbounded below, which overflows after a few training steps
# expect: failed probe|train non-finite
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -torch.exp(200 * x)
