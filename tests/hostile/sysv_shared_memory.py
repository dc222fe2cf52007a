# tries: SysV shared memory (shmget, shmat, touch, shmdt) past the address-space limit: segments stay when detached
# expect: invalid static 'ctypes'
# runtime: invalid contract shared memory refused after 0 mib
import ctypes
import os

SEGMENT = 64 << 20
TOTAL = 1536 << 20  # beyond the corpus's 1 GiB memory limit


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    held = 0
    while held < TOTAL:
        segment = libc.shmget(0, SEGMENT, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
        address = libc.shmat(segment, None, 0) if segment >= 0 else None
        if address in (None, ctypes.c_void_p(-1).value):
            raise RuntimeError(f"shared memory refused after {held >> 20} MiB: errno {ctypes.get_errno()}")
        ctypes.memset(address, 1, SEGMENT)
        libc.shmdt(ctypes.c_void_p(address))  # detached: no longer in the address space, still resident
        held += SEGMENT
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x) + 0.0 * held
