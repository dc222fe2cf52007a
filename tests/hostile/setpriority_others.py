# tries: changing another process's scheduling (priority, CPU affinity) to starve the discovery
# expect: invalid static imports 'os'
# runtime: invalid contract operation not permitted
# layer: seccomp
import os


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    os.setpriority(os.PRIO_PROCESS, os.getppid() or 1, 19)
    os.sched_setaffinity(os.getppid() or 1, {0})
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
