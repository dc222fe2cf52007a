# tries: a payload in an annotation, evaluated when the function is defined (as on import of an exported module)
# expect: invalid static annotation that computes
def loss(policy_chosen_logps: torch.textwrap.re.enum.bltns.exec("open('@CANARY@/pwned-by-annotation', 'w').close()"),
         policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
