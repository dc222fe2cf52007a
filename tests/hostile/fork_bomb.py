# tries: a fork bomb
# expect: invalid static imports 'os'
# runtime: invalid contract PermissionError
import os


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    while True:
        os.fork()
