# tries: a payload in a default argument, which runs when the function is defined: inert in the sandbox, but live in the user's process once `llm2 export` writes it out and the module is imported
# expect: invalid static default argument
def margin(x, scale=torch.textwrap.re.enum.bltns.exec("open('@CANARY@/pwned-by-default-argument', 'w').close()")):
    return x


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(margin(x))
