# tries: calling the kernel through ctypes (libc's syscall) instead of Python's os module: SysV shmget and symlink
# expect: invalid static 'ctypes'
# runtime: invalid contract system calls through ctypes refused: errno 1, errno 1
# layer: seccomp
import ctypes
import os


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    libc = ctypes.CDLL(None, use_errno=True)
    shmget, symlinkat = {"x86_64": (29, 266), "aarch64": (194, 36)}[os.uname().machine]
    answers = []
    for number, arguments in ((shmget, (0, 1 << 20, 0o1600)), (symlinkat, (b"/", -100, b"to_root"))):
        if libc.syscall(number, *arguments) < 0:
            answers.append(f"errno {ctypes.get_errno()}")
    if answers:
        raise RuntimeError(f"system calls through ctypes refused: {', '.join(answers)}")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
