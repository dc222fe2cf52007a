# tries: sleeping far past the timeout
# expect: invalid static imports 'time'
# runtime: timeout contract no result after
import time


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    time.sleep(3600)
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
