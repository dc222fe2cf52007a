# tries: a symbolic link in its scratch directory to a file outside it (for the worker to follow when it reads results)
# expect: invalid static 'os'
# runtime: invalid contract operation not permitted: '
# layer: seccomp
import os


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    os.symlink("@CANARY@/canary.txt", "to_canary")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
