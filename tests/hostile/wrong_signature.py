# tries: a loss with the wrong arguments
# expect: invalid static no function takes the contract's arguments
def loss(chosen, rejected, beta):
    return -F.logsigmoid(beta * (chosen - rejected))
