# tries: a loss with the wrong arguments
# expect: invalid static wrong arguments
def loss(chosen, rejected, beta):
    return -F.logsigmoid(beta * (chosen - rejected))
