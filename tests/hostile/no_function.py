# tries: a module that defines no function at all
# expect: invalid static no function defined
x = 1.0
