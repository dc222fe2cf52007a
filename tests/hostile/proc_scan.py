# tries: listing /proc to find the worker and read its command line and the host's connections
# expect: invalid static imports 'os'
# runtime: invalid contract permission denied
# layer: landlock
import os


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    lines = [open(f"/proc/{pid}/cmdline").read() for pid in os.listdir("/proc") if pid.isdigit()]
    lines.append(open("/proc/net/tcp").read())
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x) + 0.0 * len(lines)
