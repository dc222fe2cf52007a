# tries: rebinding a module-level name (F) from inside the loss with global
# expect: invalid static 'global F'
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    global F
    F = None
    return policy_chosen_logps
