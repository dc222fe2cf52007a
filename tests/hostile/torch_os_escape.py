# tries: reaching os through torch's own namespace (torch.os)
# expect: invalid static 'os'
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    torch.os.system("touch @CANARY@/pwned-by-torch-os")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
