# tries: leaving the process group the timeout kills (setsid, then setpgid), to outlive its evaluation
# expect: invalid static 'os'
# runtime: invalid contract left the process group refused: operation not permitted
# layer: seccomp
import os


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    if os.getsid(0) != os.getpid():  # not yet a session of its own (a second call finds it already left)
        try:
            os.setsid()
        except OSError:
            try:
                os.setpgid(0, 0)
            except OSError as exc:
                raise RuntimeError(f"left the process group refused: {exc.strerror}") from None
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
