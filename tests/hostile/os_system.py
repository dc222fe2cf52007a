# tries: running a shell command that creates a file in the canary directory
# expect: invalid static imports 'os'
# runtime: ok done
# tamper: yes
import os


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    os.system("touch @CANARY@/pwned-by-system")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
