# tries: overwriting a file outside the scratch directory
# expect: invalid static uses 'open'
# runtime: invalid contract PermissionError|FileNotFoundError
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    with open("@CANARY@/canary.txt", "w") as handle:
        handle.write("tampered")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
