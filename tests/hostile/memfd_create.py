# tries: anonymous memory files (memfd_create): memory outside the address-space limit, code loaded from memory
# expect: invalid static 'os'
# runtime: invalid contract operation not permitted
# layer: seccomp
import os


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    fd = os.memfd_create("stash")
    os.write(fd, b"x" * 4096)
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
