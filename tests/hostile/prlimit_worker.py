# tries: lowering another process's CPU limit with prlimit (the worker's, or the discovery's), to kill it
# expect: invalid static imports 'resource'
# runtime: invalid contract operation not permitted
# layer: seccomp
import os
import resource


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    resource.prlimit(os.getppid() or 1, resource.RLIMIT_CPU, (1, 1))
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
