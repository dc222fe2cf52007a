# tries: a helper at the top level next to the loss (two functions)
# expect: invalid static 2 top-level functions
def margin(a, b):
    return a - b


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
