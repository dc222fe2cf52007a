# tries: writing a file everywhere outside its scratch: /, /tmp, /dev/shm, /var/tmp, /run, /root, the venv
# expect: invalid static 'open'|'os'|'sys'
# runtime: invalid contract wrote nowhere outside the scratch
import os
import sys


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    wrote = []
    for place in ("/", "/tmp", "/dev/shm", "/var/tmp", "/run", "/root", "/dev", sys.prefix, "/usr/lib",
                  os.path.dirname(os.__file__)):
        try:
            with open(os.path.join(place, "llm2-written-by-a-candidate"), "wb") as handle:
                handle.write(b"x")
            wrote.append(place)
        except OSError:
            pass
    raise RuntimeError(f"wrote outside the scratch: {wrote}" if wrote else "wrote nowhere outside the scratch")
