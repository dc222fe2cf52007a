"""``reward-design``: Eureka's loop (a reward function as code, PPO inside, the true goal as fitness) on gymnasium's
classic-control tasks, stepped as one batch in torch so that an evaluation takes seconds on one core."""
