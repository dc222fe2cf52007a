# tries: connecting to a Unix socket outside its read roots (Ray's and Docker's sockets are such)
# expect: invalid static imports 'socket'
# runtime: invalid contract operation not permitted
# layer: seccomp
import socket


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect("@CANARY@/control.sock")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
