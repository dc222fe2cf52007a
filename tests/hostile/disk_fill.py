# tries: filling the disk with many small files, each under the file-size limit (300 MiB in 600 files of 512 KiB)
# expect: invalid static 'open'|'os'
# runtime: invalid contract no space left on device
# layer: mount_namespace
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    block = b"x" * (512 << 10)
    for index in range(600):
        try:
            with open(f"fill-{index}.bin", "wb") as handle:
                handle.write(block)
        except OSError as exc:
            raise RuntimeError(f"stopped after {index} files ({index // 2} MiB): {exc.strerror}") from None
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
