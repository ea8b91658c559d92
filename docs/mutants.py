"""Hand-made bugs in Part I of breakout_rl.py, and which of them the tests catch.

Each mutant replaces one exact piece of breakout_rl.py (it must occur exactly once) in a scratch
copy of the repository, then runs the fast Part I subset of the tests there; a mutant is caught
when at least one test fails. Run from the repository root:

    python docs/mutants.py            # all mutants, a markdown table on stdout
    python docs/mutants.py 3 7        # only mutants 3 and 7

Not a test (it takes minutes); the table it printed is in docs/mutants.md.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The Part I tests: everything except the command line, run folders and the tools (-k).
FAST = ("not main and not resume and not signal and not kill and not benchmark and not eval "
        "and not gif and not plot and not lock and not checkpoint and not bad and not refused "
        "and not history and not save and not solved and not max_minutes and not console "
        "and not help and not env_workers and not worker and not same_seed and not list_envs "
        "and not short_env and not games and not diverges and not crafted and not non_finite "
        "and not disk and not folder and not map")

MUTANTS = [
    ("Double DQN: online and target networks swapped",
     "next_actions = self.qnetwork_local(batch.next_states).argmax(dim=1, keepdim=True)\n"
     "                next_q = self.qnetwork_target(batch.next_states)",
     "next_actions = self.qnetwork_target(batch.next_states).argmax(dim=1, keepdim=True)\n"
     "                next_q = self.qnetwork_local(batch.next_states)"),
    ("Double DQN target silently replaced by Nature's", "if self.double_dqn:", "if False:"),
    ("bootstrap with γ instead of γⁿ",
     "steps = self.n_step if batch.steps is None else batch.steps",
     "steps = 1"),
    ("(1 − done) dropped: bootstraps past terminals",
     "gamma ** steps * (1.0 - batch.dones) * next_q", "gamma ** steps * next_q"),
    ("Nature target: max over the online network",
     "next_q = self.qnetwork_target(batch.next_states).max(dim=1).values",
     "next_q = self.qnetwork_local(batch.next_states).max(dim=1).values"),
    ("Q(s, a) of the greedy action instead of the taken one",
     "q_taken = self.qnetwork_local(batch.states).gather(1, batch.actions.unsqueeze(1))"
     ".squeeze(1)",
     "q_taken = self.qnetwork_local(batch.states).max(dim=1).values"),
    ("act/act_batch greedy on the target network",
     "q_values = self.qnetwork_local(torch.as_tensor(states, device=self.device))",
     "q_values = self.qnetwork_target(torch.as_tensor(states, device=self.device))"),
    ("ε-greedy inverted (explores with probability 1 − ε)",
     "explore = self.rng.random(len(actions)) < eps",
     "explore = self.rng.random(len(actions)) > eps"),
    ("ε schedule not clamped at eps_end", "min(\n            step / self.eps_decay_steps, 1.0)",
     "(\n            step / self.eps_decay_steps)"),
    ("learns before the buffer is warm", "if self.warm and self.t_step % self.train_every == 0:",
     "if self.t_step % self.train_every == 0:"),
    ("hard update copies the target into the online net",
     "self.hard_update(self.qnetwork_local, self.qnetwork_target)",
     "self.hard_update(self.qnetwork_target, self.qnetwork_local)"),
    ("soft update with τ and 1 − τ swapped",
     "target_param.mul_(1.0 - tau).add_(local_param, alpha=tau)",
     "target_param.mul_(tau).add_(local_param, alpha=1.0 - tau)"),
    ("buffer samples one slot short", "idx = self.rng.integers(0, self.size, size=self.batch_size)",
     "idx = self.rng.integers(0, max(self.size - 1, 1), size=self.batch_size)"),
    ("buffer samples empty slots", "idx = self.rng.integers(0, self.size, size=self.batch_size)",
     "idx = self.rng.integers(0, self.capacity, size=self.batch_size)"),
    ("buffer wraps one slot early",
     "self.steps[i] = steps\n        self.position = (i + 1) % self.capacity",
     "self.steps[i] = steps\n        self.position = (i + 1) % (self.capacity - 1)"),
    ("uint8 RAM not scaled", "x = x * (1.0 / 255.0)  # bytes 0..255 → 0..1", "x = x"),
    ("n-step return discounted from γ¹", "ret = sum(self.gamma ** i * step[2]",
     "ret = sum(self.gamma ** (i + 1) * step[2]"),
    ("n-step transitions cut by a terminal not marked done",
     "self.push_returns(pending, len(pending), done)",
     "self.push_returns(pending, len(pending), False)"),
    ("n-step streams of different envs mixed", "self.pending.setdefault(stream, [])",
     "self.pending.setdefault(0, [])"),
    ("loop: a time limit counted as terminal", "done = terminated[i] or life_lost[i]",
     "done = terminated[i] or truncated[i] or life_lost[i]"),
    ("loop: a lost life not terminal", "done = terminated[i] or life_lost[i]",
     "done = terminated[i]"),
    ("loop: rewards not clipped for learning",
     "learn_reward = np.sign(rewards[i]) if clip_rewards else rewards[i]",
     "learn_reward = rewards[i]"),
    ("loop: the clipped reward reported as the score", "scores[i] += rewards[i]",
     "scores[i] += np.sign(rewards[i])"),
    ("loop: a game's transition ends in the reset observation",
     "ended_in[i] = info[\"final_obs\"][i]", "pass"),
    ("loop: every env learns as stream 0", "done, stream=i,", "done, stream=0,"),
    ("AtariLives: no FIRE after a lost life",
     "if life_lost and not (terminated or truncated) and self.fire_action is not None:",
     "if False:"),
    ("REINFORCE: gradient descent instead of ascent", "self.theta += self.alpha * gradient",
     "self.theta -= self.alpha * gradient"),
    ("REINFORCE: returns not discounted", "running = rewards[t] + self.gamma * running",
     "running = rewards[t] + running"),
    ("REINFORCE: baseline added instead of subtracted",
     "advantages = returns - self.baseline.values(obs)",
     "advantages = returns + self.baseline.values(obs)"),
    ("REINFORCE: entropy bonus with the wrong sign",
     "gradient += self.entropy_coef * sum(", "gradient -= self.entropy_coef * sum("),
    ("logistic ∇log π signs flipped", "return -x * p1, x * (1.0 - p1)",
     "return x * p1, -x * (1.0 - p1)"),
    ("softmax ∇log π as π − 1[a]", "np.outer(x, one_hot[a] - probs)",
     "np.outer(x, probs - one_hot[a])"),
    ("REINFORCE loop: no estimate at a time limit", "if truncated and policy.baseline is not None:",
     "if False:"),
    ("REINFORCE loop: a lost life never ends the return",
     "ends.append(life_loss_ends_return and life_lost)", "ends.append(False)"),
    ("dueling: the mean advantage not subtracted",
     "advantages - advantages.mean(dim=1, keepdim=True)", "advantages"),
    ("prioritized: importance-sampling weights left out of the loss",
     "loss = (batch.weights * elementwise).mean()", "loss = elementwise.mean()"),
    ("prioritized: weights (N·P)^β instead of (N·P)^−β", "weights = (self.size * probs) ** (-beta)",
     "weights = (self.size * probs) ** beta"),
    ("prioritized: new transitions at priority 1, not the highest",
     "self.tree.update([slot], [self.max_priority ** self.alpha])",
     "self.tree.update([slot], [1.0])"),
    ("prioritized: priorities never updated after learning",
     "self.memory.update_priorities(batch.slots,\n"
     "                                          (q_taken - td_target).detach().cpu().numpy())",
     "pass"),
    ("prioritized: α not applied to updated priorities",
     "self.tree.update(slots, priorities ** self.alpha)", "self.tree.update(slots, priorities)"),
    ("prioritized: β never annealed", "return self.per_beta + (1.0 - self.per_beta) * min(",
     "return self.per_beta + 0.0 * min("),
    ("sum tree: a value on a range's lower edge goes left", "go_right = values >= self.nodes[left]",
     "go_right = values > self.nodes[left]"),
    ("pixels: state and next state swapped in the frame-stack buffer",
     "(frames[:, :-1], self.actions[idx], self.rewards[idx], frames[:, 1:],",
     "(frames[:, 1:], self.actions[idx], self.rewards[idx], frames[:, :-1],"),
    ("a return cut by a time limit bootstrapped with γⁿ, not γᵏ",
     "steps = self.n_step if batch.steps is None else batch.steps", "steps = self.n_step"),
    ("a time limit does not end the pending n-step returns", "if done or truncated:",
     "if done:"),
    ("ε-greedy and replay sampling share one random stream",
     "acting_seed, sampling_seed = np.random.SeedSequence(seed).spawn(2)",
     "acting_seed = sampling_seed = seed"),
    ("AtariLives drops the reward of its FIRE step", "reward += fire_reward", "pass"),
    ("FrameStackReplayBuffer stores n-step transitions with wrong next states",
     "if steps != 1 or not np.array_equal(next_state[:-1], state[1:]):", "if False:"),
    ("prioritized: weights divided by the largest over the buffer, not the batch",
     "weights /= weights.max()",
     "weights /= (self.size * self.tree.nodes[self.tree.leaves:][:self.size].min() / total"
     ") ** (-beta)"),
]


def run(indices):
    source = (ROOT / "breakout_rl.py").read_text()
    print("| # | bug | caught by |\n|---|---|---|")
    missed = 0
    for k in indices:
        name, old, new = MUTANTS[k]
        assert source.count(old) == 1, f"mutant {k} ({name}): the piece occurs {source.count(old)}×"
        with tempfile.TemporaryDirectory() as scratch:
            for file in ("breakout_rl.py", "test_breakout_rl.py", "README.md", "LICENSE",
                         "CITATION.cff"):
                shutil.copy(ROOT / file, scratch)
            Path(scratch, "docs").mkdir()   # the guides and pages the tests read
            for page in (ROOT / "docs").glob("*.md"):
                shutil.copy(page, Path(scratch, "docs"))
            Path(scratch, "breakout_rl.py").write_text(source.replace(old, new))
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                 "-k", FAST], cwd=scratch, capture_output=True, text=True)
        failed = [line.split("::")[1].split(" ")[0] for line in result.stdout.splitlines()
                  if line.startswith("FAILED")]
        missed += not failed
        print(f"| {k} | {name} | {'`' + failed[0] + '`' if failed else '**MISSED**'} |",
              flush=True)
    print(f"\n{len(indices) - missed} of {len(indices)} caught")
    return missed


if __name__ == "__main__":
    chosen = [int(a) for a in sys.argv[1:]] or range(len(MUTANTS))
    sys.exit(1 if run(list(chosen)) else 0)
