# tries: getattr(__builtins__, ...) to reach open
# expect: invalid static 'getattr'
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    getattr(__builtins__, "open")("@CANARY@/canary.txt", "w").write("tampered")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
