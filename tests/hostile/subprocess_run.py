# tries: starting a program with subprocess
# expect: invalid static imports 'subprocess'
# runtime: invalid contract PermissionError
import subprocess


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    subprocess.run(["touch", "@CANARY@/pwned-by-subprocess"], check=False)
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
