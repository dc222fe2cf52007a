# tries: reading the host's environment (os.environ and /proc/self/environ) for secrets and variable names
# expect: invalid static 'os'|'open'
# runtime: ok done
import os

FIXED = {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"}


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    try:
        with open("/proc/self/environ", "rb") as handle:
            started = handle.read()
    except OSError:  # unreadable (a process that is not dumpable): nothing to find there
        started = b""
    started_with = [entry.split(b"=", 1)[0].decode() for entry in started.split(b"\0") if b"=" in entry]
    foreign = sorted((set(os.environ) | set(started_with)) - FIXED)
    if foreign:
        raise RuntimeError(f"host environment: {', '.join(foreign)}")
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
