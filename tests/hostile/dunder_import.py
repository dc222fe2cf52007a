# tries: __import__ to reach os without an import statement
# expect: invalid static '__import__'
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    __import__("os").system("touch @CANARY@/pwned-by-dunder-import")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
