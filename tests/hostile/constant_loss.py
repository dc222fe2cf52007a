# tries: a constant loss with no gradient (training would do nothing)
# expect: invalid contract no gradient
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    return torch.zeros_like(policy_chosen_logps.detach())
