# tries: opening a TCP connection to a server on 127.0.0.1 and sending data
# expect: invalid static imports 'socket'
# runtime: invalid contract operation not permitted
# layer: seccomp
import socket


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.connect(("127.0.0.1", @PORT@))
    connection.sendall(b"leaked")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
