# tries: opening a TCP connection to a server on 127.0.0.1 and sending data
# expect: invalid static imports 'socket'
# runtime: invalid contract unreachable|permission
import socket


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    connection = socket.create_connection(("127.0.0.1", @PORT@), timeout=2)
    connection.sendall(b"leaked")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
