# tries: walking object.__subclasses__() to find a class that reaches os
# expect: invalid static dunder attribute
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    classes = ().__class__.__base__.__subclasses__()
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
