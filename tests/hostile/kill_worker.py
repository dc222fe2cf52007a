# tries: killing its parent, the warm worker, with SIGKILL
# expect: invalid static imports 'os'
# runtime: invalid contract PermissionError
import os


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    os.kill(os.getppid(), 9)
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
