# tries: eval of a string to hide what runs
# expect: invalid static 'eval'
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    eval("__import__('os').system('touch @CANARY@/pwned-by-eval')")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
