# tries: reaching __import__ through a frame's builtins (f_builtins) to get os and write outside the sandbox
# expect: invalid static f_builtins|__import__
# runtime: invalid contract permission denied|operation not permitted|no such file or directory
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    builtins = (value for value in [0]).gi_frame.f_builtins
    os = builtins["__import__"]("os")
    with os.fdopen(os.open("@CANARY@/pwned-by-frame", os.O_WRONLY | os.O_CREAT), "w") as handle:
        handle.write("pwned")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
