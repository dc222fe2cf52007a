# tries: printing megabytes of output (the output-size limit must stop it)
# expect: invalid|failed contract output limit
# runtime: invalid|failed contract output limit
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    for _ in range(100):
        print("x" * 1_000_000)
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
