# tries: a character device node (/dev/mem's numbers) in its scratch directory
# expect: invalid static 'os'
# runtime: invalid contract mknod refused: operation not permitted
import os
import stat


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    try:
        os.mknod("mem_device", stat.S_IFCHR | 0o600, os.makedev(1, 1))
    except OSError as exc:  # Python names no file here: say which call it was
        raise RuntimeError(f"mknod refused: {exc.strerror}") from None
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
