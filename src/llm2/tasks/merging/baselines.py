"""Known merge methods, each written from its paper as one self-contained function in the merging contract.

Notation: θ0 the base (seed) parameter, θ_i the experts' (i = 1..k), τ_i = θ_i − θ0 their task vectors, λ a
scaling. Every method works on one parameter tensor at a time (as mergekit does); "per layer" means per tensor.
Hyper-parameters are the papers' own; task arithmetic's λ is the one value tuned here (see TASK_ARITHMETIC_LAMBDA).
"""

from __future__ import annotations

from llm2.task_api.base import Baseline

# Ilharco et al. choose λ from the grid 0.1, 0.2, ..., 1.0 on validation data. On the synthetic world (world 0, the
# default three experts, 1,024 validation problems per skill from the training side of the split, never the scored
# ones) the best was 0.6 (exact match 0.724; 0.5: 0.718, 0.7: 0.702, 1.0: 0.621); `bench/merging.py --sections
# lambda` redoes the search. DARE on task arithmetic and Breadcrumbs use the same λ.
TASK_ARITHMETIC_LAMBDA = 0.6

AVERAGE = '''
def merge(name, base, experts):
    # uniform model soup: the plain average of the experts' weights (the base takes no part)
    return torch.stack(experts).mean(dim=0)
'''

TASK_ARITHMETIC = f'''
def merge(name, base, experts):
    lam = {TASK_ARITHMETIC_LAMBDA}  # scaling of the summed task vectors
    return base + lam * sum(expert - base for expert in experts)
'''

TIES = '''
def merge(name, base, experts):
    density, lam = 0.2, 1.0  # keep each task vector's top 20 % by magnitude; TIES's default scaling
    deltas = torch.stack([expert - base for expert in experts]).reshape(len(experts), -1)
    size = deltas.shape[1]
    keep = max(1, int(density * size))
    # trim: zero all but each task vector's `keep` largest magnitudes
    threshold = deltas.abs().topk(keep, dim=1, sorted=False).values.min(dim=1, keepdim=True).values
    trimmed = torch.where(deltas.abs() >= threshold, deltas, torch.zeros_like(deltas))
    # elect: per entry, the sign with the larger total magnitude
    sign = torch.sign(trimmed.sum(dim=0))
    # disjoint merge: the mean of the trimmed values that agree with the elected sign
    agree = (torch.sign(trimmed) == sign) & (trimmed != 0)
    mean = (trimmed * agree).sum(dim=0) / agree.sum(dim=0).clamp(min=1)
    return base + lam * mean.reshape(base.shape)
'''

DARE_LINEAR = f'''
def merge(name, base, experts):
    p, lam = 0.9, {TASK_ARITHMETIC_LAMBDA}  # drop 90 % of each task vector at random; task arithmetic's scaling
    merged = base.clone()
    for expert in experts:
        delta = expert - base
        kept = torch.bernoulli(torch.full_like(delta, 1.0 - p))
        merged = merged + lam * delta * kept / (1.0 - p)  # rescale the survivors by 1 / (1 - p)
    return merged
'''

DARE_TIES = '''
def merge(name, base, experts):
    p, lam = 0.9, 1.0  # DARE's drop rate; TIES's scaling
    deltas = []
    for expert in experts:
        delta = expert - base
        kept = torch.bernoulli(torch.full_like(delta, 1.0 - p))
        deltas.append(delta * kept / (1.0 - p))  # drop and rescale in place of TIES's trimming
    deltas = torch.stack(deltas)
    sign = torch.sign(deltas.sum(dim=0))  # elect the sign with the larger total magnitude
    agree = (torch.sign(deltas) == sign) & (deltas != 0)
    mean = (deltas * agree).sum(dim=0) / agree.sum(dim=0).clamp(min=1)
    return base + lam * mean
'''

BREADCRUMBS = f'''
def merge(name, base, experts):
    beta, gamma, lam = 0.85, 0.993, {TASK_ARITHMETIC_LAMBDA}  # mask magnitudes below the 85th and above the 99.3th percentile
    merged = base.clone()
    for expert in experts:
        delta = (expert - base).flatten()
        size = delta.numel()
        magnitude = delta.abs()
        low = magnitude.kthvalue(max(1, int(beta * size))).values  # the largest of the masked small ones
        high = magnitude.kthvalue(max(1, int(gamma * size))).values  # the largest that is kept
        kept = (magnitude > low) & (magnitude <= high)
        if size * (1.0 - beta) < 1:  # too few entries for percentiles (a scalar): keep the task vector whole
            kept = torch.ones_like(kept)
        merged = merged + lam * (delta * kept).reshape(base.shape)
    return merged
'''

MODEL_STOCK = '''
def merge(name, base, experts):
    k = len(experts)
    average = torch.stack(experts).mean(dim=0)
    if k == 1:
        return average
    deltas = [(expert - base).flatten() for expert in experts]
    cosines = []
    for i in range(k):
        for j in range(i + 1, k):
            norms = (deltas[i].norm() * deltas[j].norm()).clamp(min=1e-12)
            cosines.append((deltas[i] @ deltas[j]) / norms)
    # the mean pairwise angle between task vectors, per layer; a negative cosine would push t below 0: clamp it
    cos = torch.stack(cosines).mean().clamp(0.0, 1.0)
    t = k * cos / (1 + (k - 1) * cos)
    return t * average + (1 - t) * base
'''

SLERP = '''
def merge(name, base, experts):
    def slerp(a, b, t):
        a_dir = a.flatten() / a.norm().clamp(min=1e-12)
        b_dir = b.flatten() / b.norm().clamp(min=1e-12)
        dot = (a_dir @ b_dir).clamp(-1.0, 1.0)
        if dot.abs() > 0.9995:  # nearly parallel: the arc is a line
            return (1 - t) * a + t * b
        omega = torch.arccos(dot)
        return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)

    # two experts: halfway along the arc (t = 0.5); more: a running spherical mean, the i-th expert at t = 1/i
    merged = experts[0]
    for i in range(1, len(experts)):
        merged = slerp(merged, experts[i], 1.0 / (i + 1))
    return merged
'''

BASELINES: dict[str, Baseline] = {b.name: b for b in (
    Baseline("task_arithmetic", TASK_ARITHMETIC.strip() + "\n",
             f"θ0 + λ Σ_i τ_i, λ = {TASK_ARITHMETIC_LAMBDA}",
             "Ilharco et al. 2023, Editing Models with Task Arithmetic (ICLR); λ chosen on validation problems"),
    Baseline("average", AVERAGE.strip() + "\n", "(1/k) Σ_i θ_i",
             "Wortsman et al. 2022, Model soups (ICML): the uniform soup"),
    Baseline("ties", TIES.strip() + "\n",
             "trim each τ_i to its top 20 % magnitudes; elect per entry the sign of Σ_i τ̂_i; θ0 + λ · mean of the "
             "τ̂_i agreeing with it, λ = 1",
             "Yadav et al. 2023, TIES-Merging: Resolving Interference When Merging Models (NeurIPS)"),
    Baseline("dare_linear", DARE_LINEAR.strip() + "\n",
             f"θ0 + λ Σ_i m_i ⊙ τ_i / (1 − p), m_i ~ Bernoulli(1 − p), p = 0.9, λ = {TASK_ARITHMETIC_LAMBDA}",
             "Yu et al. 2024, Language Models are Super Mario (ICML): DARE on top of task arithmetic"),
    Baseline("dare_ties", DARE_TIES.strip() + "\n",
             "DARE (p = 0.9, rescale 1/(1 − p)) in place of TIES's trimming, then TIES's sign election and "
             "disjoint mean, λ = 1",
             "Yu et al. 2024 (DARE) with Yadav et al. 2023 (TIES), as mergekit's dare_ties"),
    Baseline("breadcrumbs", BREADCRUMBS.strip() + "\n",
             f"θ0 + λ Σ_i m_i ⊙ τ_i, m_i keeps |τ_i| between its 85th and 99.3th percentile per layer, "
             f"λ = {TASK_ARITHMETIC_LAMBDA}",
             "Davari & Belilovsky 2023, Model Breadcrumbs: Scaling Multi-Task Model Merging with Sparse Masks "
             "(β = 0.85, γ = 0.993)"),
    Baseline("model_stock", MODEL_STOCK.strip() + "\n",
             "t = k cos θ / (1 + (k − 1) cos θ), θ the mean pairwise angle between the τ_i per layer; "
             "t · (1/k) Σ_i θ_i + (1 − t) θ0",
             "Jang et al. 2024, Model Stock: All we need is just a few fine-tuned models (ECCV)"),
    Baseline("slerp", SLERP.strip() + "\n",
             "spherical interpolation of the two experts' weights at t = 0.5; k > 2: a running spherical mean "
             "(the i-th expert at t = 1/i)",
             "Shoemake 1985, as merged by mergekit's slerp (White 2016 for generative models)"),
)}
