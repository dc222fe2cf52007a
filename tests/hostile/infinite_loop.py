# tries: an infinite loop inside the loss (static checks allow loops; the wall-clock timeout must stop it)
# expect: timeout contract no result after
# runtime: timeout contract no result after
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    total = 0
    while True:
        total += 1
