# tries: a FIFO in its scratch directory (a reader that opens it would wait for ever)
# expect: invalid static 'os'
# runtime: invalid contract mkfifo refused: operation not permitted
# layer: seccomp
import os


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    try:
        os.mkfifo("result_fifo")
    except OSError as exc:  # Python names no file here: say which call it was
        raise RuntimeError(f"mkfifo refused: {exc.strerror}") from None
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
