# tries: ignoring SIGTERM, then looping forever (SIGKILL after the grace period must end it)
# expect: invalid static imports 'signal'
# runtime: timeout contract process group was killed
import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    while True:
        pass
