# tries: code that does not parse (an unclosed parenthesis)
# expect: invalid static syntax error
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    return -F.logsigmoid(beta * (policy_chosen_logps - policy_rejected_logps)
