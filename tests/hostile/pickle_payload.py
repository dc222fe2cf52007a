# tries: a pickle payload whose loading runs a shell command
# expect: invalid static imports 'pickle'
# runtime: ok done
# tamper: yes
import pickle


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    pickle.loads(b"cos\nsystem\n(S'touch @CANARY@/pwned-by-pickle'\ntR.")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
