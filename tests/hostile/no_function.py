# tries: a module that defines no function at all
# expect: invalid static no function takes the contract's arguments
x = 1.0
