# tries: allocating memory without bound, 100 MB at a time (the address-space limit must stop it)
# expect: invalid|failed contract memory
# runtime: invalid|failed contract memory
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    hoard = []
    while True:
        hoard.append(bytearray(100_000_000))
