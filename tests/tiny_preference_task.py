"""preference-synthetic on a world a few times smaller than the default, for the tests of the loop, archive, resume
and reports that need real training and scoring but none of the default world's numbers: an evaluation costs a
fraction of a second instead of seconds, the world builds in a few seconds, and dpo's frontier (the default fitness,
still the one these runs use) is one run traced in this process. The tests that assert the default world's numbers
(test_preference_synthetic, test_fitness, the hostile corpus, ...) keep the registered task.

Use it as ``--task TINY_TASK`` (a task file, like any user's) or ``load_task(TINY_TASK)``.
"""

from pathlib import Path

from llm2.tasks.preference_synthetic.config import TrainConfig, WorldConfig
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask

TINY_TASK = f"{Path(__file__).resolve()}:TinyPreference"
# a quarter of the default's held-out prompts, a tenth of its reference data and a twelfth of its pairs; five times
# the learning rate for the twelfth of the steps, so that the policy moves as far as on the default world (dpo at
# beta 0.05: judge 0.76 from 0.42 at KL 3.4; hinge and ipo near it; discopop collapses) and the losses rank apart
WORLD = WorldConfig(reference_sequences=2000, reference_epochs=2, pairs=256, heldout_prompts=128)
TRAIN = TrainConfig(lr=2e-3, quick_prompts=32, frontier_seeds=1, frontier_betas=(1.0,),
                    frontier_budgets=(0.5, 1.0, 2.0))


class TinyPreference(PreferenceSyntheticTask):
    def __init__(self, world_config: WorldConfig | None = None, train_config: TrainConfig | None = None):
        super().__init__(world_config or WORLD, train_config or TRAIN)
