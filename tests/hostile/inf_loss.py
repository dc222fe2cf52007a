# tries: a loss that is infinite
# expect: invalid contract non-finite
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    return policy_chosen_logps * math.inf
