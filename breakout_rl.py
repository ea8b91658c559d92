"""breakout_rl.py — deep Q-learning and a hand-written policy gradient, in one file that learns.

What this file teaches
----------------------
* **DQN** (Mnih et al. 2015) on Atari Breakout, reading the console's 128 bytes of RAM instead of
  the screen: a small MLP ``QNetwork``, a preallocated ``ReplayBuffer``, an ``Agent`` that acts
  ε-greedily and learns from a TD target computed with a separate target network. By default the
  target is Double DQN's (van Hasselt et al. 2016); ``--no-double-dqn`` gives the Nature paper's.
* Two refinements, one flag each: a dueling head (``--dueling``, Wang et al. 2016; on by default
  for Atari from RAM) and prioritized replay on a numpy sum tree (``--prioritized``, Schaul et
  al. 2016).
* **REINFORCE** (Williams 1992) written by hand in numpy: a ``LogisticPolicy`` for two-action
  problems such as CartPole, with the gradient of log π derived on paper and coded line by line,
  and its n-action generalisation ``SoftmaxPolicy`` (picked automatically, e.g. for Breakout).
* The assignment's three levels, one flag each: CartPole-v1 and LunarLander-v3 (small float
  states), Breakout from RAM (the default), and Breakout from the screen (``--obs pixels``:
  Nature DQN's ``ConvQNetwork`` and a ``FrameStackReplayBuffer`` that stores every frame once).
* The traps on the way, each explained where it is handled: Breakout needs FIRE to serve the ball;
  a lost life ends a *learning* episode but not the game; RAM bytes must be scaled; rewards are
  clipped for learning only; ``terminated`` is not ``truncated``; Gymnasium 1.x's reset/step API.

How to read it
--------------
**Part I — the algorithms** (sections 1–10) is the tutorial, in the order a course teaches it —
the environment's traps, DQN (1–5) and two refinements of it (6), REINFORCE (7–9), then DQN from
pixels (10) — and uses nothing from Part II: you may stop reading where it ends. Each class there
takes plain arguments and can be copied, with Part I's import block, into your own training
loop; section 5's loop is the one the command line trains with (the README's homework results
come from the README's own loop over the same classes).
**Part II — the machinery** (sections 11–18) is what makes this a tool: configs and per-env
defaults, the run folder, the worker processes that feed section 5's loop many envs at once,
checkpoints, evaluation, plots, GIFs, benchmarks and the command line. It holds no loop of its own.

Commands
--------
    pip install -r requirements.txt

    python breakout_rl.py --algo dqn                       # DQN on Breakout RAM (~40 min)
    python breakout_rl.py --algo dqn --total-steps 150000  # a 2-minute smoke run that learns a bit
    python breakout_rl.py --algo pg                        # REINFORCE on CartPole-v1 (seconds)
    python breakout_rl.py --algo pg --env ALE/Breakout-v5 --max-minutes 30   # ... on Breakout
    python breakout_rl.py --algo dqn --env CartPole-v1     # DQN on CartPole (~3 minutes)
    python breakout_rl.py --algo dqn --env LunarLander-v3  # needs: pip install box2d pygame
    python breakout_rl.py --algo dqn --obs pixels          # DQN on Breakout's screen
    python breakout_rl.py --algo dqn --env pong            # any Atari game (see --list-envs)
    python breakout_rl.py --benchmark-games                # DQN on 7 games, a table of scores
    python breakout_rl.py --eval runs/RUN --gif game.gif   # play 10 games; Q-values in the GIF
    python breakout_rl.py --explain runs/RUN               # which RAM bytes the agent reads
    python breakout_rl.py --resume runs/RUN                # continue after Ctrl-C
    python breakout_rl.py --plot runs/A runs/B --reach 100 # compare runs (seeds: their mean)
    python breakout_rl.py --benchmark-env                  # raw env speed, random policy's score
    python -m pytest -q                                    # the tests

Every run writes into ``--out`` (default: a new folder under ``runs/``): ``model.pt`` (weights,
config, counters), ``config.json`` (the hyperparameters used and what ran them: versions,
device, command), ``history.csv`` (one row per game), ``metrics.csv`` (ε, loss, Q, speed),
``curve.png`` (the learning curve) and ``agent.gif`` (one game of the final agent). Ctrl-C saves
all of them before exiting. The folder starts with a marker file, ``.breakout_rl-run``: the tool
never trains into (or writes over) a folder holding files it did not write.

Needs Python 3.10 or newer. Tested with Python 3.11, torch 2.13, gymnasium 1.4, ale-py 0.12,
numpy 2.4, matplotlib 3.11 (and the lowest versions requirements.txt allows: docs/versions.md).

License: MIT (the LICENSE file): copy, adapt and hand out this file and its classes, keeping the
copyright line. To cite it: CITATION.cff.

References
----------
* Mnih et al. 2015, "Human-level control through deep reinforcement learning", Nature 518.
  https://www.nature.com/articles/nature14236
* van Hasselt, Guez, Silver 2016, "Deep Reinforcement Learning with Double Q-learning".
  https://arxiv.org/abs/1509.06461
* Wang et al. 2016, "Dueling Network Architectures for Deep Reinforcement Learning".
  https://arxiv.org/abs/1511.06581
* Schaul et al. 2016, "Prioritized Experience Replay". https://arxiv.org/abs/1511.05952
* Hessel et al. 2018, "Rainbow: Combining Improvements in Deep Reinforcement Learning".
  https://arxiv.org/abs/1710.02298
* Williams 1992, "Simple statistical gradient-following algorithms for connectionist
  reinforcement learning", Machine Learning 8. https://doi.org/10.1007/BF00992696
* Sutton & Barto 2018, "Reinforcement Learning: An Introduction", 2nd ed., ch. 13 (REINFORCE,
  baselines). http://incompleteideas.net/book/the-book-2nd.html
* Mania, Guy, Recht 2018, "Simple random search provides a competitive approach to
  reinforcement learning" (linear policies on standardised states). https://arxiv.org/abs/1803.07055
* Nota & Thomas 2020, "Is the Policy Gradient a Gradient?" (what dropping γ^t does).
  https://arxiv.org/abs/1906.07073
* Machado et al. 2018, "Revisiting the Arcade Learning Environment" (sticky actions, evaluation).
  https://arxiv.org/abs/1709.06009
* Gymnasium: https://gymnasium.farama.org — ALE: https://ale.farama.org
"""

import sys

if sys.version_info < (3, 10):  # (this file uses itertools.pairwise, str.removeprefix, …)
    sys.exit(f"breakout_rl.py needs Python 3.10 or newer; this is Python {sys.version.split()[0]}")

import signal


def interrupted_while_starting(signum, frame):
    """Ctrl-C while torch & co. load (a second or two): one line and exit status 130."""
    print("breakout_rl.py: interrupted while starting", file=sys.stderr)
    raise SystemExit(130)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, interrupted_while_starting)

# Part I's imports: all that its classes need (copy them with the classes).
import copy
import itertools
import math
from typing import NamedTuple

import ale_py
import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Gymnasium 1.x no longer finds the Atari games by itself: ale-py registers its "ALE/..." ids here.
gym.register_envs(ale_py)


# ████████████████████████████████████████████████████████████████████████████████████████████████
# PART I — THE ALGORITHMS
# ████████████████████████████████████████████████████████████████████████████████████████████████
# Sections 1–10: the environment's traps, DQN (QNetwork, ReplayBuffer, Agent, its training loop,
# then a dueling head and prioritized replay), REINFORCE (LogisticPolicy, SoftmaxPolicy, its
# training loop), and last DQN from pixels (a conv net and a frame-sharing buffer). Nothing here
# uses Part II; every class takes plain arguments with defaults that learn.


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 1. The environment and its traps
# ════════════════════════════════════════════════════════════════════════════════════════════════
# Breakout through Gymnasium 1.x and ale-py: gym.make("ALE/Breakout-v5", obs_type="ram",
# frameskip=4, repeat_action_probability=0.0). An observation is then the console's 128 bytes of
# RAM (uint8, 0..255), and one agent step repeats the action for 4 frames. Sticky actions (v5's
# default 0.25) are turned off, as in the Nature paper.
#
# Gymnasium 1.x API: reset() returns (obs, info); step() returns five values
# (obs, reward, terminated, truncated, info). `terminated` means the game really ended (no more
# lives): the value of what follows is 0. `truncated` means a time limit cut the episode short:
# the game could have gone on, so its value is NOT 0. Mixing the two up is the most common bug in
# DQN ports.
#
# The traps, and who handles each:
#   * FIRE: the ball is only served after FIRE. An agent that never presses it sees nothing happen
#     for the rest of the game (27,000 steps until the time limit). AtariLives presses FIRE for it
#     at the start and after every lost life.
#   * lives: a game has 5 lives. For learning, losing a life is a terminal (no bootstrapping past
#     it: that teaches "losing a life is bad" fast), but the game goes on — we do not reset.
#     AtariLives reports info["life_lost"]; the training loop stores done = terminated or life_lost.
#   * scaling: RAM bytes (and pixels) are 0..255. Fed raw, they make every pre-activation up to
#     255× larger than the initialisation expects, so a fresh network's Q-values start far from
#     the small values the TD targets have at first. QNetwork divides uint8 input by 255 itself.
#   * reward clipping: Breakout's rows are worth 1, 4 or 7 points, other games' rewards run into
#     the hundreds. The loop learns from sign(reward) ∈ {−1, 0, 1}, so one learning rate suits
#     every game, and reports the raw score.


class AtariLives(gym.Wrapper):
    """Starts Atari games properly and reports lost lives.

    * reset(): up to `noop_max` random no-ops (varied starting states), then FIRE if the game has
      a FIRE action (Breakout needs it to serve the ball).
    * step(): adds ``info["life_lost"]`` (bool). After a lost life that did not end the game it
      presses FIRE, so the next ball is served; that extra step is not counted as an agent step,
      but what it returns is: its reward is added to the step's, and if it ends the game the
      step reports that (`terminated` / `truncated` are the FIRE step's then).
    """

    def __init__(self, env, noop_max=30):
        super().__init__(env)
        self.noop_max = noop_max
        meanings = env.unwrapped.get_action_meanings()
        self.fire_action = meanings.index("FIRE") if "FIRE" in meanings else None
        self.lives = 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for _ in range(self.np_random.integers(0, self.noop_max + 1)):
            obs, _, terminated, truncated, info = self.env.step(0)  # 0 is NOOP in every game
            if terminated or truncated:
                obs, info = self.env.reset()
        obs, info = self._fire(obs, info)
        self.lives = info["lives"]
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        life_lost = info["lives"] < self.lives
        if life_lost and not (terminated or truncated) and self.fire_action is not None:
            obs, fire_reward, terminated, truncated, info = self.env.step(self.fire_action)
            reward += fire_reward
        self.lives = info["lives"]
        info["life_lost"] = life_lost
        return obs, reward, terminated, truncated, info

    def _fire(self, obs, info):
        """Press FIRE once at the start of a game (if the game has it); returns (obs, info)."""
        if self.fire_action is not None:
            obs, _, _, _, info = self.env.step(self.fire_action)
        return obs, info


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 2. QNetwork
# ════════════════════════════════════════════════════════════════════════════════════════════════
# Q(s, ·; θ): one forward pass gives the value of every action in state s. The network itself
# scales uint8 input (RAM bytes) from 0..255 to 0..1 on entry, so a copied QNetwork is right
# whatever feeds it; float observations (CartPole's 4 numbers) go in as they are.


class QNetwork(nn.Module):
    """MLP mapping a batch of observations to one Q-value per action.

    Args:
        state_size: length of the flat observation (128 for Atari RAM, 4 for CartPole).
        action_size: number of discrete actions.
        seed: seeds torch's global RNG so the initial weights are reproducible.
        hidden_sizes: widths of the hidden layers.
        dueling: end in two heads, a state value V(s) and advantages A(s, a), combined into
            Q(s, a) = V(s) + A(s, a) − mean_a′ A(s, a′) (Wang et al. 2016); False: one head.
    """

    def __init__(self, state_size, action_size, seed=0, hidden_sizes=(256, 256), dueling=False):
        super().__init__()
        torch.manual_seed(seed)
        layers, width = [], state_size
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.dueling = dueling
        if dueling:  # (a refinement a first reading may skip; see the forward pass)
            self.layers = nn.Sequential(*layers)
            self.value = nn.Linear(width, 1)               # V(s)
            self.advantage = nn.Linear(width, action_size)  # A(s, ·)
        else:
            layers.append(nn.Linear(width, action_size))
            self.layers = nn.Sequential(*layers)

    def forward(self, state):
        """state: (batch, state_size), uint8 (scaled by 1/255 here) or float
        → Q-values (batch, action_size), float32."""
        x = state.flatten(1).to(torch.float32)
        if state.dtype == torch.uint8:
            x = x * (1.0 / 255.0)  # bytes 0..255 → 0..1
        if not self.dueling:
            return self.layers(x)
        # Dueling head: the value of the state and how much better each action is than the
        # others are learned apart, so every transition teaches V(s), whichever action it took.
        # V + A alone is not identifiable (V + c and A − c give the same Q for any c); forcing
        # the advantages to average 0 over the actions pins the split down:
        #     Q(s, a) = V(s) + A(s, a) − mean_a′ A(s, a′)
        features = self.layers(x)
        advantages = self.advantage(features)                               # (batch, A)
        return self.value(features) + advantages - advantages.mean(dim=1, keepdim=True)


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 3. ReplayBuffer
# ════════════════════════════════════════════════════════════════════════════════════════════════
# Learning from consecutive steps would feed the network strongly correlated samples; a replay
# buffer stores past transitions and samples them uniformly. We preallocate one numpy array per
# field and write in a circle: sampling is then one fancy-indexing call per field, where a `deque`
# of tuples would need a Python loop over the batch and np.stack of many small arrays. RAM
# observations stay uint8, so 1M transitions (state and next state) take 256 MB instead of 1 GB.


class Batch(NamedTuple):
    """A batch of B transitions as tensors, what Agent.learn() reads.

    states (B, *obs) in the obs dtype, actions (B,) int64, rewards (B,) float32, next_states
    (B, *obs), dones (B,) float32; steps (B,) float32: how many rewards each reward sums (an
    n-step return's n; its next state is discounted by γ^steps), None = the agent's n_step;
    weights (B,) float32 and slots (B,) int64: from a PrioritizedReplayBuffer only, else None.
    A course's plain 5-tuple (states, actions, rewards, next_states, dones) reads as Batch(*it).
    """
    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_states: torch.Tensor
    dones: torch.Tensor
    steps: torch.Tensor = None
    weights: torch.Tensor = None
    slots: np.ndarray = None


class ReplayBuffer:
    """Fixed-size circular buffer of (state, action, reward, next_state, done) transitions.

    Args:
        action_size: number of actions (kept for the template's interface).
        buffer_size: capacity; the oldest transition is overwritten when full.
        batch_size: transitions returned by sample().
        seed: seeds the buffer's own sampling RNG.
        device: where sample() puts its tensors.
    Arrays are allocated on the first push, with the observation's own shape and dtype.
    """

    prioritized = False  # sample() draws uniformly (PrioritizedReplayBuffer: by priority)

    def __init__(self, action_size, buffer_size, batch_size, seed=0, device="cpu"):
        self.action_size = action_size
        self.capacity = buffer_size
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        self.position = 0  # where the next transition is written
        self.size = 0      # how many slots hold a transition
        self.states = None

    def _allocate(self, state):
        state = np.asarray(state)
        self.states = np.zeros((self.capacity, *state.shape), dtype=state.dtype)
        self.next_states = np.zeros_like(self.states)
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.dones = np.zeros(self.capacity, dtype=np.float32)
        self.steps = np.ones(self.capacity, dtype=np.float32)

    def push(self, state, action, reward, next_state, done, steps=1):
        """Store one transition. `done` means "no bootstrapping past this step" (a terminal);
        `steps`: how many rewards `reward` sums (1, or n for an n-step return)."""
        if self.states is None:
            self._allocate(state)
        i = self.position
        self.states[i] = state
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_states[i] = next_state
        self.dones[i] = done
        self.steps[i] = steps
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self):
        """Uniform random Batch of batch_size transitions, as tensors on `device`."""
        idx = self.rng.integers(0, self.size, size=self.batch_size)
        # One host→device copy per field and batch (not per transition).
        return Batch(*(torch.from_numpy(array[idx]).to(self.device) for array in
                       (self.states, self.actions, self.rewards, self.next_states, self.dones,
                        self.steps)))

    def __len__(self):
        return self.size


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 4. Agent
# ════════════════════════════════════════════════════════════════════════════════════════════════
# DQN in four methods. act(): ε-greedy, with ε falling linearly from eps_start to eps_end
# (act_batch() does the same for the observations of several envs in one forward pass).
# step(): store the transition and, every `train_every` steps, learn from a random batch.
# learn(): move Q(s, a) toward the TD target. The one this class computes is
#     y = R + γⁿ·(1 − done)·Q_target(s′, a′),   R = r_t + γ·r_{t+1} + … + γ^(n−1)·r_{t+n−1}
# with n = n_step and s′ the state n steps later. With n = 1 it is the textbook one-step target
# y = r + γ·(1 − done)·Q_target(s′, a′); the default n = 3 is explained at store_n_step below.
# Q_target is a copy of the network refreshed only now and then: chasing a target that moves
# with every gradient step is what makes naive Q-learning with neural nets diverge. The copy is
# refreshed either by hard copies (Nature DQN) or by soft Polyak averaging (soft_update).
# a′ is picked by the online network and valued by the target network (Double DQN, van Hasselt
# et al. 2016), which over-estimates less than Nature DQN's max_a′ Q_target(s′, a′);
# double_dqn=False gives the Nature target.


class Agent:
    """A DQN agent: online and target QNetworks, a ReplayBuffer and an Adam optimizer.

    Args:
        state_size: length of the flat observation (128 for Breakout's RAM).
        action_size: number of discrete actions.
        seed: seeds the network's initial weights, the ε-greedy draws and the buffer's sampling
            (two independent random streams, so exploration and replay are not correlated).
        hidden_sizes: widths of the QNetwork's hidden layers.
        lr: Adam's learning rate.
        gamma: discount factor γ.
        buffer_size: replay capacity in transitions.
        batch_size: transitions per gradient step.
        learning_starts: transitions stored before the first gradient step.
        train_every: agent steps between gradient steps.
        target_update_every: agent steps between hard copies θ′ ← θ (used when tau == 0).
        tau: soft update θ′ ← τθ + (1−τ)θ′ after every gradient step (0 = hard copies).
        double_dqn: Double DQN's target (True) or Nature DQN's (False).
        loss: "huber" (linear beyond an error of 1) or "mse".
        grad_clip: clip the gradient's global norm to this (0 = off).
        lr_decay_steps: agent steps over which lr falls linearly to 0 (0 = constant lr).
        eps_start, eps_end, eps_decay_steps: act()'s ε schedule when no ε is passed.
        n_step: learn from n-step returns (1 = the classic one-step target).
        dueling: give the QNetwork a dueling head (section 6).
        per_beta, per_beta_steps: with a prioritized `memory` (section 6), the
            importance-sampling exponent β, annealed linearly from per_beta to 1 over
            per_beta_steps agent steps.
        device: torch device for the networks and sampled batches.
        network: the online network to use instead of a QNetwork (e.g. a ConvQNetwork).
        memory: the replay buffer to use instead of a ReplayBuffer (e.g. a
            PrioritizedReplayBuffer or a FrameStackReplayBuffer).
    The defaults learn Breakout from RAM in a one-env homework loop (a few hundred thousand
    steps). `python breakout_rl.py --algo dqn` (32 envs at once, 3M steps) makes
        Agent(128, 4, seed=0, buffer_size=1_000_000, batch_size=256, learning_starts=20_000,
              train_every=4, eps_end=0.01, dueling=True)
    i.e. a bigger buffer and batch for a longer run, and a dueling head.
    """

    def __init__(self, state_size, action_size, seed=0, *, hidden_sizes=(256, 256), lr=1e-4,
                 gamma=0.99, buffer_size=100_000, batch_size=64, learning_starts=10_000,
                 train_every=4, target_update_every=1_000, tau=0.0, double_dqn=True,
                 loss="huber", grad_clip=10.0, lr_decay_steps=0, eps_start=1.0, eps_end=0.05,
                 eps_decay_steps=100_000, n_step=3, dueling=False, per_beta=0.4,
                 per_beta_steps=1_000_000, device="cpu", network=None, memory=None):
        if loss not in ("huber", "mse"):
            raise ValueError(f"loss must be 'huber' or 'mse', got {loss!r}")
        self.action_size = action_size
        self.lr, self.gamma, self.batch_size = lr, gamma, batch_size
        self.learning_starts, self.train_every = learning_starts, train_every
        self.target_update_every, self.tau = target_update_every, tau
        self.double_dqn, self.loss, self.grad_clip = double_dqn, loss, grad_clip
        self.lr_decay_steps = lr_decay_steps
        self.eps_start, self.eps_end, self.eps_decay_steps = eps_start, eps_end, eps_decay_steps
        self.n_step = n_step
        self.per_beta, self.per_beta_steps = per_beta, per_beta_steps
        self.pending = {}  # stream → transitions whose n-step return is not complete yet
        self.device = torch.device(device)
        acting_seed, sampling_seed = np.random.SeedSequence(seed).spawn(2)  # two streams
        self.rng = np.random.default_rng(acting_seed)
        if network is None:
            network = QNetwork(int(np.prod(state_size)), action_size, seed, hidden_sizes,
                               dueling)
        self.qnetwork_local = network.to(self.device)
        self.qnetwork_target = copy.deepcopy(self.qnetwork_local)  # θ′ starts equal to θ
        try:  # fused=True runs Adam's whole update as one kernel (torch ≥ 2.4 on the CPU)
            self.optimizer = torch.optim.Adam(self.qnetwork_local.parameters(), lr=lr, fused=True)
        except (RuntimeError, TypeError):
            self.optimizer = torch.optim.Adam(self.qnetwork_local.parameters(), lr=lr)
        if memory is None:  # (not `memory or ...`: an empty buffer has len 0, so it is falsy)
            memory = ReplayBuffer(action_size, buffer_size, batch_size, sampling_seed,
                                  self.device)
        self.memory = memory
        self.t_step = 0        # agent steps seen by step()
        self.learn_steps = 0   # gradient steps taken
        self.last_loss = self.last_q_mean = float("nan")

    def epsilon(self, step):
        """ε at agent step `step`: ε = ε_start + (ε_end − ε_start)·min(step / decay_steps, 1)."""
        if self.eps_decay_steps <= 0:
            return self.eps_end
        return self.eps_start + (self.eps_end - self.eps_start) * min(
            step / self.eps_decay_steps, 1.0)

    def learning_rate(self, step):
        """lr at agent step `step`: lr_t = lr·max(0, 1 − t / lr_decay_steps) (lr if no decay)."""
        if self.lr_decay_steps <= 0:
            return self.lr
        return self.lr * max(0.0, 1.0 - step / self.lr_decay_steps)

    def beta(self, step):
        """Prioritized replay's β at agent step `step`: β_t = β₀ + (1 − β₀)·min(t / T, 1)."""
        return self.per_beta + (1.0 - self.per_beta) * min(step / max(self.per_beta_steps, 1),
                                                           1.0)

    def act(self, state, eps=None):
        """ε-greedy action (int) for one observation `state` (shape (state_size,), any dtype).

        eps=None follows the agent's own schedule (epsilon() of the coming step)."""
        return int(self.act_batch(np.asarray(state)[None], eps)[0])

    def act_batch(self, states, eps=None):
        """ε-greedy actions (N,) int64 for N observations `states` (N, *obs_shape), one forward
        pass for all of them; each is random with probability ε, else argmax_a Q_local(s, a).

        eps=None follows the agent's own schedule (epsilon() of the coming step)."""
        if eps is None:
            eps = self.epsilon(self.t_step + 1)
        # no_grad: acting needs no autograd graph, so torch keeps no intermediate results.
        with torch.no_grad():
            q_values = self.qnetwork_local(torch.as_tensor(states, device=self.device))  # (N, A)
        actions = q_values.argmax(dim=1).cpu().numpy()                             # (N,)
        explore = self.rng.random(len(actions)) < eps
        actions[explore] = self.rng.integers(self.action_size, size=int(explore.sum()))
        return actions

    @property
    def warm(self):
        """True once the buffer holds enough transitions to learn from."""
        return len(self.memory) >= max(self.learning_starts, self.batch_size)

    def step(self, state, action, reward, next_state, done, stream=0, truncated=False):
        """Store a transition; learn every `train_every` steps once the buffer is warm; refresh
        the target network when its time comes.

        `done` must be True only for a real terminal (or a lost life), never for a time limit;
        `truncated` is True where a time limit cut the game after this step (the n-step
        returns then end here and bootstrap from next_state). `stream` says which env the
        transition came from when one agent learns from several envs at once (each stream's
        n-step returns are built from its own transitions).
        Raises FloatingPointError if the loss stops being finite (the weights are then useless).
        """
        self.remember(state, action, reward, next_state, done, truncated, stream)
        self.t_step += 1
        if self.warm and self.t_step % self.train_every == 0:
            self.learn_from_memory()
        if self.tau == 0 and self.t_step % self.target_update_every == 0:
            self.hard_update(self.qnetwork_local, self.qnetwork_target)

    def learn_from_memory(self):
        """One gradient step on a batch from the buffer, at the scheduled learning rate (and β,
        for a prioritized buffer), then the soft target update if tau > 0."""
        if self.lr_decay_steps > 0:
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(self.t_step)
        if getattr(self.memory, "prioritized", False):
            batch = self.memory.sample(self.beta(self.t_step))
        else:
            batch = self.memory.sample()
        self.last_loss = self.learn(batch)
        if not math.isfinite(self.last_loss):
            raise FloatingPointError(f"the loss became {self.last_loss} at step "
                                     f"{self.t_step} (try a lower learning rate)")
        if self.tau > 0:
            self.soft_update(self.qnetwork_local, self.qnetwork_target, self.tau)

    # ── A refinement a first reading may skip: n-step returns ──────────────────────────────
    # With n_step = n (Sutton 1988, used by Rainbow) the stored transition is
    #     (s_t, a_t, R = r_t + γ·r_{t+1} + … + γ^(n−1)·r_{t+n−1}, s_{t+n}, done)
    # and learn() bootstraps with γⁿ. A reward reaches the value of the action that earned it n
    # times faster than through n one-step backups — in Breakout the ball takes dozens of steps
    # from paddle to brick. The price is a little bias: the n−1 later actions were ε-greedy ones
    # of an older policy. remember() keeps the last n transitions of each stream (each env) and
    # stores a transition once n later rewards are known. Where the game (or life) ends first,
    # R stops there after k < n rewards: at a terminal nothing is bootstrapped; at a time limit
    # (truncated) the return bootstraps from the last state with γᵏ, which the buffer learns
    # from the transition's `steps` = k.

    def remember(self, state, action, reward, next_state, done, truncated=False, stream=0):
        """Store a transition in the buffer: at once with n_step = 1, else through `stream`'s
        list of pending transitions, pushing the n-step transitions that are complete."""
        if self.n_step == 1:
            self.memory.push(state, action, reward, next_state, done)
            return
        pending = self.pending.setdefault(stream, [])
        if pending and not np.array_equal(pending[-1][3], state):
            raise ValueError(f"stream {stream} went on from another state than its last "
                             "next_state: a game ended without done or truncated. Pass "
                             "truncated=True to step() where a time limit (or your loop) cuts "
                             "a game, so its n-step returns stop there")
        pending.append((np.array(state), action, reward, np.array(next_state)))  # (copies: a
        # caller may reuse its arrays)
        if done or truncated:  # the returns stop here: every pending transition ends now
            self.push_returns(pending, len(pending), done)
        elif len(pending) == self.n_step:
            self.push_returns(pending, 1, False)

    def push_returns(self, pending, count, done):
        """Push the `count` oldest pending transitions, each with the discounted sum of the k
        rewards from it to the newest one (steps = k), whose next state it bootstraps from, and
        remove them."""
        last_next_state = pending[-1][3]
        for _ in range(count):
            # R = Σ_{i<k} γ^i·r_{t+i}
            ret = sum(self.gamma ** i * step[2] for i, step in enumerate(pending))
            state, action = pending[0][0], pending[0][1]
            self.memory.push(state, action, ret, last_next_state, done, len(pending))
            del pending[0]

    def learn(self, experiences, gamma=None):
        """One gradient step on a batch: a Batch from the buffer, or a course's 5-tuple
        (states, actions, rewards, next_states, dones), shapes (B, *obs), (B,) int64,
        (B,) float32, (B, *obs), (B,) float32. Returns the loss (Huber or MSE, as a float)
        before the step. A Batch with `weights` (a PrioritizedReplayBuffer's) weights the loss
        per transition and gives the sampled `slots` their new priorities |δ| + ε.

        gamma is the per-step discount γ, as a course template passes it (None: the agent's).
        A transition whose reward sums k rewards (Batch.steps; a plain tuple's: n_step) is
        bootstrapped with γᵏ; those sums used the agent's γ, so a different γ is refused.
        """
        if gamma is None:
            gamma = self.gamma
        elif gamma != self.gamma and self.n_step > 1:
            raise ValueError(f"learn(gamma={gamma}) but this agent sums its {self.n_step}-step "
                             f"returns with gamma={self.gamma}: create the Agent with "
                             f"gamma={gamma} (or n_step=1)")
        batch = Batch(*experiences)
        steps = self.n_step if batch.steps is None else batch.steps  # k per transition
        # ── the core of DQN ──────────────────────────────────────────────────────────────────
        with torch.no_grad():
            if self.double_dqn:
                # Double DQN: a′ = argmax_a′ Q_local(s′, a′), valued by Q_target(s′, a′).
                next_actions = self.qnetwork_local(batch.next_states).argmax(dim=1, keepdim=True)
                next_q = self.qnetwork_target(batch.next_states).gather(1, next_actions).squeeze(1)
            else:
                # Nature DQN: max_a′ Q_target(s′, a′).
                next_q = self.qnetwork_target(batch.next_states).max(dim=1).values   # (batch,)
            # y = R + γᵏ·(1 − done)·Q_target(s′, a′): no bootstrapping past a terminal
            # (k = n_step, or fewer where a time limit cut the return; one step: R = r, γᵏ = γ).
            td_target = batch.rewards + gamma ** steps * (1.0 - batch.dones) * next_q  # (batch,)
        # Q(s, a) for the actions actually taken.
        q_taken = self.qnetwork_local(batch.states).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        # With the TD error δ = Q(s, a) − y:
        if batch.weights is not None:
            # Prioritized replay: L = mean(w_i · ℓ(δ_i)), with the importance-sampling weights
            # w_i; the sampled transitions' priorities become |δ_i| + ε.
            elementwise = (F.mse_loss if self.loss == "mse" else F.smooth_l1_loss)(
                q_taken, td_target, reduction="none")
            loss = (batch.weights * elementwise).mean()
            self.memory.update_priorities(batch.slots,
                                          (q_taken - td_target).detach().cpu().numpy())
        elif self.loss == "mse":
            # L = mean(δ²): a large error counts in proportion (what CartPole's rare failures
            # need).
            loss = F.mse_loss(q_taken, td_target)
        else:
            # Huber: L = mean(½δ² if |δ| ≤ 1 else |δ| − ½): squared for small errors, linear
            # for large ones, so one surprising transition cannot produce a huge gradient (the
            # Nature paper's "error clipping").
            loss = F.smooth_l1_loss(q_taken, td_target)
        # ─────────────────────────────────────────────────────────────────────────────────────
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.qnetwork_local.parameters(), self.grad_clip)
        self.optimizer.step()
        self.learn_steps += 1
        self.last_q_mean = float(q_taken.detach().mean())  # mean Q(s, a) of the batch, logged
        return loss.item()

    def state_dict(self):
        """Everything a resumed run needs, as CPU tensors and plain numbers:
        {"weights": online net, "train_state": {target net, optimizer, counters}}."""
        def on_cpu(state):
            return {k: v.cpu() for k, v in state.items()}
        return {"weights": on_cpu(self.qnetwork_local.state_dict()),
                "train_state": {"target": on_cpu(self.qnetwork_target.state_dict()),
                                "optimizer": self.optimizer.state_dict(),
                                "t_step": self.t_step, "learn_steps": self.learn_steps}}

    def load_state_dict(self, weights, train_state):
        """Restore what state_dict() returned (the replay buffer is not part of it)."""
        self.qnetwork_local.load_state_dict(weights)
        self.qnetwork_target.load_state_dict(train_state["target"])
        self.optimizer.load_state_dict(train_state["optimizer"])
        self.t_step, self.learn_steps = train_state["t_step"], train_state["learn_steps"]

    @staticmethod
    def soft_update(local_model, target_model, tau):
        """Polyak averaging of the target's parameters: θ′ ← τ·θ + (1 − τ)·θ′."""
        with torch.no_grad():
            for target_param, local_param in zip(target_model.parameters(),
                                                 local_model.parameters()):
                target_param.mul_(1.0 - tau).add_(local_param, alpha=tau)

    @staticmethod
    def hard_update(local_model, target_model):
        """Copy the online network into the target network: θ′ ← θ."""
        target_model.load_state_dict(local_model.state_dict())


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 5. The DQN training loop
# ════════════════════════════════════════════════════════════════════════════════════════════════
# One flat loop, written against Gymnasium's vector-env API so that the same code runs one env or
# many: act, step the envs, store and learn, count a game when one ends. A "game" is a full
# episode of the environment (for Breakout all 5 lives) and its score is the raw, unclipped sum of
# rewards. The command line hands this very loop its 32 Breakout envs (stepped by worker
# processes, section 14), and `on_step` is where it hooks its log, checkpoints and stop
# conditions; with one env it does what a course's episode loop does, written for many.
#
# Make the envs with same-step autoreset, e.g. for one env
#     envs = gym.vector.SyncVectorEnv([lambda: env],
#                                     autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
# The trap it sets: when a game ends, the vector env resets that env *within the same step*, so
# next_obs[i] is already the first observation of the next game. The transition must end in the
# game's real last observation, which the vector env keeps in info["final_obs"][i]. Storing
# next_obs[i] instead would teach the agent that losing leads to a fresh start.
#
# With envs that can run in the background (step_async: Gymnasium's AsyncVectorEnv, section 14's
# worker processes) the actions for the next env step are chosen and sent before the agent
# learns from this step's transitions, so the emulators run while the network learns; acting
# then lags learning by one env step. Otherwise the loop acts after learning, as a course loop.


def run_dqn(envs, agent, total_steps, clip_rewards=True, seed=None, on_step=None):
    """Train `agent` on a Gymnasium vector env `envs` (N copies, same-step autoreset) until it has
    taken `total_steps` agent steps; each env step gives N transitions, each one agent.step
    (counting the steps it took before, so a restored agent continues). Returns the agent's step
    count at the end.

    on_step(step, game_score), if given, is called after every transition; game_score is the
    raw score of the game that just ended, or None. It may return True to stop early.
    """
    if envs.metadata.get("autoreset_mode") != gym.vector.AutoresetMode.SAME_STEP:
        raise ValueError("run_dqn needs a vector env with autoreset_mode=gym.vector."
                         "AutoresetMode.SAME_STEP (the last observation of a game is in "
                         "info['final_obs'])")
    overlap = hasattr(envs, "step_async")  # AsyncVectorEnv, or section 14's worker processes
    obs, _ = envs.reset(seed=seed)
    scores = np.zeros(envs.num_envs)  # raw score of each env's current game
    actions = agent.act_batch(obs)  # ε-greedy, ε from the agent's schedule
    if overlap:
        envs.step_async(actions)
    stop, pending = False, overlap
    while not stop and agent.t_step < total_steps:
        if overlap:
            next_obs, rewards, terminated, truncated, info = envs.step_wait()
        else:
            next_obs, rewards, terminated, truncated, info = envs.step(actions)
        pending = False
        ended_in = next_obs.copy()  # the observation each transition ended in...
        for i in np.flatnonzero(info.get("_final_obs", [])):
            ended_in[i] = info["final_obs"][i]  # ...the game's last one where a game ended
        if overlap:  # choose and send the next actions now: the emulators step while we learn
            next_actions = agent.act_batch(next_obs)
            if agent.t_step + len(actions) < total_steps:
                envs.step_async(next_actions)
                pending = True
        life_lost = info.get("life_lost", np.zeros(envs.num_envs, dtype=bool))
        for i in range(envs.num_envs):
            scores[i] += rewards[i]
            # Learn from sign(r) ∈ {−1, 0, 1}; the score we report stays the raw one.
            learn_reward = np.sign(rewards[i]) if clip_rewards else rewards[i]
            # A lost life is a terminal for learning: no bootstrapping past it. A time limit
            # (truncated) is not: the next state still has value, so it is left out here.
            done = terminated[i] or life_lost[i]
            agent.step(obs[i], actions[i], learn_reward, ended_in[i], done, stream=i,
                       truncated=truncated[i] and not done)
            game_score = None
            if terminated[i] or truncated[i]:  # the game is over (all lives) or cut
                game_score, scores[i] = scores[i], 0.0
            if on_step is not None and on_step(agent.t_step, game_score):
                stop = True
            if stop or agent.t_step >= total_steps:
                break
        obs = next_obs
        actions = next_actions if overlap else agent.act_batch(obs)
    if pending:  # stopped early: collect the env step already sent, so the envs can close
        envs.step_wait()
    return agent.t_step


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 6. Refinements a first reading may skip: a dueling head and prioritized replay
# ════════════════════════════════════════════════════════════════════════════════════════════════
# Two of Rainbow's refinements (Hessel et al. 2018), each one flag of the command line:
# * Agent(..., dueling=True) (--dueling): QNetwork ends in a value head V(s) and an advantage
#   head A(s, ·), Q(s, a) = V(s) + A(s, a) − mean_a′ A(s, a′) (Wang et al. 2016; the line is in
#   QNetwork).
# * Agent(..., memory=PrioritizedReplayBuffer(...)) (--prioritized): the buffer below replaces
#   the uniform one; the Agent sees its `prioritized` attribute and passes it β.
# Agent's defaults keep both off, so a first reading meets the plain DQN; the command line turns
# the dueling head on for Atari from RAM (ENV_DEFAULTS, section 11, says why).
#
# Prioritized replay (Schaul et al. 2016). Uniform sampling replays a transition the network
# already predicts well as often as one it gets badly wrong. Instead, transition i is sampled
# with probability
#     P(i) = p_i^α / Σ_k p_k^α,   p_i = |δ_i| + ε,
# δ_i its TD error when it was last learned from (α = 0: uniform; ε keeps every P(i) > 0). New
# transitions enter with the highest priority seen so far, so each is replayed soon. Sampling by
# priority changes the distribution the updates average over, which biases them;
# importance-sampling weights undo that in the loss,
#     w_i = (N·P(i))^(−β) / max_{j in the batch} w_j,
# with β annealed from β₀ to 1 over training (the full correction by the end, when it matters
# most). Dividing by a maximum only scales the step down, so that no weight exceeds 1. Schaul et
# al. write max_j w_j without saying over what; OpenAI Baselines takes it over the whole buffer
# (the weight of the smallest priority), which scales every step down more and by an amount
# that drifts with the rarest transition. We take it over the batch, as Dopamine does.
# Sampling by priority needs, for a uniform u in [0, Σ p), the transition whose cumulative
# priority range holds u. A sum tree answers that in log₂ N steps: its leaves hold the p_i, each
# inner node the sum of its two children. From the root, go left if u < sum(left child), else
# subtract that sum and go right. With every leaf at the same depth, one numpy step per level
# moves a whole batch of u's down at once: 20 steps for 1M transitions, no loop per transition.


class SumTree:
    """Priorities of `capacity` slots in a binary sum tree (numpy), sampled and updated a whole
    batch at a time.

    nodes[1] is the root; the children of node k are 2k and 2k + 1; the leaves, one per slot,
    are nodes[leaves] … nodes[2·leaves − 1], with leaves = capacity rounded up to a power of 2.
    """

    def __init__(self, capacity):
        self.leaves = 1 << max(0, capacity - 1).bit_length()
        self.nodes = np.zeros(2 * self.leaves)  # float64: sums of a million priorities stay exact

    def total(self):
        """Σ p over all slots."""
        return self.nodes[1]

    def update(self, slots, priorities):
        """Set the priorities of `slots` (B,) to `priorities` (B,), then refresh the sums of
        their ancestors, one level of the tree per numpy step."""
        nodes = np.asarray(slots, dtype=np.int64) + self.leaves
        self.nodes[nodes] = priorities
        while self.leaves > 1:
            nodes = np.unique(nodes // 2)
            self.nodes[nodes] = self.nodes[2 * nodes] + self.nodes[2 * nodes + 1]
            if nodes[0] == 1:  # the root
                break

    def find(self, values):
        """The slots (B,) int64 whose cumulative-priority ranges hold `values` (B,), each in
        [0, total()): slot i covers [p_0 + … + p_(i−1), p_0 + … + p_i)."""
        values = np.array(values, dtype=np.float64)
        nodes = np.ones(len(values), dtype=np.int64)
        while nodes[0] < self.leaves:  # all at the same depth: one level per step
            left = 2 * nodes
            go_right = values >= self.nodes[left]
            values = np.where(go_right, values - self.nodes[left], values)
            nodes = np.where(go_right, left + 1, left)
        return nodes - self.leaves


class PrioritizedReplayBuffer(ReplayBuffer):
    """A ReplayBuffer that samples transition i with probability P(i) = p_i^α / Σ_k p_k^α and
    returns importance-sampling weights (Schaul et al. 2016).

    Args:
        action_size, buffer_size, batch_size, seed, device: as for ReplayBuffer.
        alpha: how strongly priorities count (0 = uniform; Schaul et al.: 0.6).
        eps: added to |δ| so that no transition's probability is ever 0.
    sample(beta) returns a Batch with `weights` (B,) float32 and the sampled `slots` (B,) int64
    filled in; after learning, call update_priorities(slots, td_errors).
    """

    prioritized = True  # Agent passes sample() the importance-sampling exponent β

    def __init__(self, action_size, buffer_size, batch_size, seed=0, device="cpu", alpha=0.6,
                 eps=1e-6):
        super().__init__(action_size, buffer_size, batch_size, seed, device)
        self.alpha, self.eps = alpha, eps
        self.tree = SumTree(buffer_size)
        self.max_priority = 1.0  # the largest |δ| + ε seen: new transitions get it

    def push(self, state, action, reward, next_state, done, steps=1):
        """Store one transition at the highest priority so far (so it is replayed soon)."""
        slot = self.position
        super().push(state, action, reward, next_state, done, steps)
        self.tree.update([slot], [self.max_priority ** self.alpha])

    def sample(self, beta=1.0):
        """A Batch drawn by priority, with its importance-sampling weights (B,) float32 on
        `device` and the sampled slots (B,) int64 (a numpy array)."""
        total = self.tree.total()
        # one u in each of B equal parts of [0, total): a spread-out batch (Schaul et al.)
        values = (np.arange(self.batch_size) + self.rng.random(self.batch_size)) * (
            total / self.batch_size)
        slots = np.minimum(self.tree.find(values), self.size - 1)  # (rounding at the far end)
        probs = self.tree.nodes[slots + self.tree.leaves] / total       # P(i)
        # w_i = (N·P(i))^(−β) / max_{j in the batch} w_j
        weights = (self.size * probs) ** (-beta)
        weights /= weights.max()
        fields = (torch.from_numpy(array[slots]).to(self.device) for array in
                  (self.states, self.actions, self.rewards, self.next_states, self.dones,
                   self.steps))
        return Batch(*fields, torch.as_tensor(weights, dtype=torch.float32, device=self.device),
                     slots)

    def update_priorities(self, slots, td_errors):
        """p_i = |δ_i| + ε for the sampled `slots` (B,), from their TD errors (B,) (a numpy
        array or a tensor)."""
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(slots, priorities ** self.alpha)


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 7. LogisticPolicy (REINFORCE in numpy)
# ════════════════════════════════════════════════════════════════════════════════════════════════
# A policy gradient method improves a stochastic policy π(a|s, θ) directly. The objective is the
# expected return from the start, J(θ) = E_τ~π[ Σ_t γ^t r_t ]; the policy-gradient theorem gives
#     ∇J(θ) = E[ Σ_t γ^t · G_t · ∇_θ log π(a_t|s_t, θ) ],   G_t = Σ_{k≥t} γ^(k−t) r_k.
# REINFORCE estimates it from one whole episode and climbs: θ ← θ + α·∇J. Like most
# implementations (Sutton & Barto's episodic pseudocode keeps it), we drop the γ^t factor: every
# step's action then counts as much as the first one's. The update is then no
# longer the gradient of J (in general not of any objective: Nota & Thomas 2020, "Is the Policy
# Gradient a Gradient?") — a biased direction that learns well in practice.
#
# With two actions the policy can be a logistic regression on the features x = φ(s):
#     π(1|x) = σ(x·θ),  π(0|x) = 1 − σ(x·θ),  σ(z) = 1 / (1 + e^−z).
# Since dσ/dz = σ(1 − σ), the gradients of the log-probabilities are
#     ∇θ log π(1|x) = x·(1 − σ(x·θ)),   ∇θ log π(0|x) = −x·σ(x·θ).


def sigmoid(z):
    """σ(z) = 1 / (1 + e^−z), written as (1 + tanh(z/2)) / 2: equal, and never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class LinearBaseline:
    """A learned state-value estimate V(s) = w·x to subtract from REINFORCE's returns (numpy).

    Subtracting any b(s_t) from G_t leaves the policy gradient unbiased, since
    E_a[∇θ log π(a|s)]·b(s) = b(s)·∇θ Σ_a π(a|s) = b(s)·∇θ 1 = 0, but a good b lowers its
    variance: an action is pushed up only when it did better than expected from its state.

    Args:
        n_features: length of the feature vector x.
        lr: step size β of the least-squares fit.
    """

    def __init__(self, n_features, lr=0.01):
        self.w = np.zeros(n_features)
        self.lr = lr

    def values(self, x):
        """V(s) = x·w for features x of shape (T, n_features) → (T,), or (n_features,) → float."""
        return np.asarray(x, dtype=np.float64) @ self.w

    def fit(self, x, returns):
        """One gradient step on ½·mean((G − V)²): w ← w + β·xᵀ(G − V)/T. x (T, n), returns (T,)."""
        x = np.asarray(x, dtype=np.float64)
        self.w += self.lr * x.T @ (np.asarray(returns) - self.values(x)) / len(returns)


class LogisticPolicy:
    """Two-action stochastic policy π(1|x) = σ(x·θ), trained by REINFORCE (numpy only).

    Args:
        theta: initial parameters θ, shape (n_features,) (a list is fine).
        alpha: gradient-ascent step size α.
        gamma: discount factor γ.
        seed: seeds the RNG that samples actions; None follows numpy's global RNG, so
            np.random.seed(...) makes the run reproducible.
        normalize_returns: standardise each episode's returns (or advantages) before the update.
        baseline: a LinearBaseline to subtract from the returns, or None.
        entropy_coef: weight β of the entropy bonus (0 = plain REINFORCE).
    Features x may be numpy arrays or lists of numbers.
    """

    def __init__(self, theta, alpha=0.002, gamma=0.99, seed=None, normalize_returns=False,
                 baseline=None, entropy_coef=0.0):
        self.theta = np.array(theta, dtype=np.float64)
        self.alpha = alpha
        self.gamma = gamma
        self.normalize_returns = normalize_returns
        self.baseline = baseline
        self.entropy_coef = entropy_coef
        # np.random (the module) draws from numpy's global RNG, which np.random.seed() sets.
        self.rng = np.random if seed is None else np.random.default_rng(seed)

    def probs(self, x):
        """Action probabilities [π(0|x), π(1|x)] for features x of shape (n_features,)."""
        p1 = sigmoid(np.asarray(x, dtype=np.float64) @ self.theta)
        return np.array([1.0 - p1, p1])

    def act(self, x):
        """Sample an action; returns (action: int, probability of that action: float)."""
        probs = self.probs(x)
        action = int(self.rng.random() < probs[1])
        return action, float(probs[action])

    def grad_log_p(self, x):
        """(∇θ log π(0|x), ∇θ log π(1|x)), each of shape (n_features,)."""
        x = np.asarray(x, dtype=np.float64)
        p1 = sigmoid(x @ self.theta)
        # ∇θ log π(0|x) = −x·σ(x·θ);   ∇θ log π(1|x) = x·(1 − σ(x·θ))
        return -x * p1, x * (1.0 - p1)

    def grad_entropy(self, x):
        """∇θ H(π(·|x)) for features x (n_features,), shaped like theta.

        H = −p·log p − (1 − p)·log(1 − p) with p = σ(z), z = x·θ. Since log(p / (1 − p)) = z,
        dH/dp = −z, and dp/dz = p(1 − p), so ∇θ H = −x·z·p·(1 − p): zero at p = ½ (most
        uncertain), pulling z back towards 0 as the policy grows sure of itself.
        """
        x = np.asarray(x, dtype=np.float64)
        z = x @ self.theta
        p1 = sigmoid(z)
        return -x * z * p1 * (1.0 - p1)

    def discount_rewards(self, rewards, last_value=0.0, ends=None):
        """Discounted returns G_t = r_t + γ·G_{t+1}, shape (T,).

        G after the last step is `last_value`: 0 at a real terminal, or an estimate of what was
        left when a time limit cut the episode short. `ends` (bool, shape (T,), optional) marks
        steps after which the return starts afresh (G_{t+1} = 0), e.g. a lost life in Breakout:
        each life then gets credit only for its own points.
        """
        returns = np.zeros(len(rewards), dtype=np.float64)
        running = last_value
        for t in reversed(range(len(rewards))):
            if ends is not None and ends[t]:
                running = 0.0
            running = rewards[t] + self.gamma * running
            returns[t] = running
        return returns

    def update(self, rewards, obs, actions, last_value=0.0, ends=None):
        """One REINFORCE step from one episode: rewards (T,), features obs (T, n), actions (T,)
        (arrays or lists); `last_value` and `ends` as in discount_rewards.

        Returns the gradient estimate that was applied, shaped like theta.
        """
        obs = np.asarray(obs, dtype=np.float64)
        returns = self.discount_rewards(np.asarray(rewards, dtype=np.float64), last_value, ends)
        # Reward-to-go: G_t sums the rewards from step t on (r_t included), not the episode's
        # whole return; an action cannot change what came before it, so earlier rewards would
        # add noise to its gradient and nothing else.
        advantages = returns
        if self.baseline is not None:
            # A_t = G_t − V(s_t): better or worse than expected from this state.
            advantages = returns - self.baseline.values(obs)
            self.baseline.fit(obs, returns)
        if self.normalize_returns and len(advantages) > 1:
            # Â_t = (A_t − mean(A)) / std(A). Subtracting the episode's mean acts as a crude
            # baseline and dividing by the std makes the step size independent of the reward
            # scale: actions better than this episode's average are pushed up. Both use the
            # episode's own returns, so this is not an exact unbiased estimate any more — a
            # small bias traded for much lower variance.
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        # one ∇θ log π(a_t|s_t) per step: (T, *theta.shape)
        grad_log_pi = np.array([self.grad_log_p(x)[a] for x, a in zip(obs, actions)])
        # ∇J(θ) ≈ Σ_t A_t · ∇θ log π(a_t|s_t)   (A_t = G_t without a baseline; γ^t dropped)
        gradient = np.tensordot(advantages, grad_log_pi, axes=1)
        if self.entropy_coef > 0:
            # Entropy bonus: climb J(θ) + β·Σ_t H(π(·|s_t)). Without it one lucky episode can make
            # the policy (nearly) deterministic, after which it never tries anything else.
            gradient += self.entropy_coef * sum(self.grad_entropy(x) for x in obs)
        # ── the policy-gradient step happens here: θ ← θ + α·∇J(θ) ──
        self.theta += self.alpha * gradient
        return gradient

    def state_dict(self):
        """{"weights": {"theta": tensor[, "baseline_w": tensor]}, "train_state": {}}."""
        weights = {"theta": torch.from_numpy(self.theta.copy())}
        if self.baseline is not None:
            weights["baseline_w"] = torch.from_numpy(self.baseline.w.copy())
        return {"weights": weights, "train_state": {}}


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 8. SoftmaxPolicy and the features a linear policy sees
# ════════════════════════════════════════════════════════════════════════════════════════════════
# With n actions the logistic policy generalises to a softmax over one linear score per action,
# θ of shape (n_features, n_actions):
#     π(a|x) = exp(x·θ_a) / Σ_b exp(x·θ_b),   ∇θ log π(a|x) = x ⊗ (1[a] − π(·|x)),
# where 1[a] is the one-hot vector of a. With n = 2 this is the logistic policy again. The
# REINFORCE update (discounted returns, Σ_t A_t·∇θ log π, θ ← θ + α·∇J) does not change.


def softmax(logits):
    """exp(z) / Σ exp(z) over the last axis, computed as exp(z − max z): never overflows."""
    exp = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


class SoftmaxPolicy(LogisticPolicy):
    """n-action stochastic policy π(·|x) = softmax(x·θ), trained by the same REINFORCE update.

    Args:
        theta: initial parameters θ, shape (n_features, n_actions).
        alpha, gamma, seed, normalize_returns, baseline, entropy_coef: as for LogisticPolicy.
    """

    def probs(self, x):
        """Action probabilities π(·|x), shape (n_actions,), for features x (n_features,)."""
        return softmax(np.asarray(x, dtype=np.float64) @ self.theta)

    def act(self, x):
        """Sample an action; returns (action: int, probability of that action: float)."""
        probs = self.probs(x)
        action = min(int(np.searchsorted(np.cumsum(probs), self.rng.random())), len(probs) - 1)
        return action, float(probs[action])

    def grad_log_p(self, x):
        """[∇θ log π(a|x) for each action a], each of shape (n_features, n_actions)."""
        x = np.asarray(x, dtype=np.float64)
        probs = self.probs(x)
        one_hot = np.eye(len(probs))
        # ∇θ log π(a|x) = x ⊗ (1[a] − π(·|x))
        return [np.outer(x, one_hot[a] - probs) for a in range(len(probs))]

    def grad_entropy(self, x):
        """∇θ H(π(·|x)) for features x (n_features,), shape (n_features, n_actions).

        H = −Σ_b π_b·log π_b. With z = x·θ, ∂H/∂z_a = −π_a·(log π_a + H), so
        ∇θ H = x ⊗ (−π ⊙ (log π + H)). log π is computed as z − max z − log Σ exp(z − max z),
        which stays finite where π itself underflows to 0.
        """
        x = np.asarray(x, dtype=np.float64)
        logits = x @ self.theta
        shifted = logits - logits.max()
        log_probs = shifted - np.log(np.exp(shifted).sum())
        probs = np.exp(log_probs)
        entropy = -(probs * log_probs).sum()
        return np.outer(x, -probs * (log_probs + entropy))


# What a linear policy sees in Breakout: φ(s) = the 128 RAM bytes (each scaled, then standardised
# by a FeatureScaler) plus a constant 1. Among the bytes are the paddle's x (byte 72) and the
# ball's x (byte 99). Moving towards the ball is a *linear* rule: RIGHT when x_ball − x_paddle
# > 0, else LEFT, i.e. logit(RIGHT) − logit(LEFT) = k·(x_ball − x_paddle), weights +k on byte
# 99 and −k on byte 72. Played exactly, that rule scores about 66 points a game, and a linear
# softmax can learn a soft version of it. (Where the ball will land needs products of bytes,
# which a linear policy cannot form.) The trap on the way: holding LEFT scores 11 every game, so
# a policy that settles on one action early stops looking for anything better. What got past it
# here: standardised bytes, so the ball's and paddle's weights grow as fast as the bias's; an
# entropy bonus, so no action dies out; and −1 per lost life, so a miss is blamed on the steps
# just before it.


def scaled_obs(obs):
    """The observation as a flat float64 vector; uint8 (RAM bytes) scaled from 0..255 to 0..1."""
    x = np.asarray(obs, dtype=np.float64).ravel()
    return x / 255.0 if np.asarray(obs).dtype == np.uint8 else x


class FeatureScaler:
    """Standardises observations with running statistics: x̂ = clip((x − mean)/std, −5, 5).

    One step size α serves every weight only if the features vary on similar scales. RAM bytes do
    not: the ball's x sweeps a good part of 0..1 every second, while a byte of the score changes
    a few times per game. Standardised, each feature moves about ±1, and linear policies learn
    much faster (Mania et al. 2018 standardise the states of their linear policies the same
    way). A byte that never changed has std 0 and maps to 0; rare jumps are clipped to ±5.

    Args:
        n: number of features.
    """

    def __init__(self, n):
        self.count = 0
        self.mean = np.zeros(n)
        self.var = np.ones(n)

    def update(self, batch):
        """Merge the statistics of `batch` (T, n) into the running mean and variance (Chan et
        al.'s parallel formula, exact for any split of the data into batches)."""
        n, total = len(batch), self.count + len(batch)
        delta = batch.mean(axis=0) - self.mean
        self.var = (self.var * self.count + batch.var(axis=0) * n
                    + delta ** 2 * self.count * n / total) / total
        self.mean = self.mean + delta * n / total
        self.count = total

    def __call__(self, x):
        """Standardised copy of x (n,) or (T, n)."""
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -5.0, 5.0)

    def state_dict(self):
        """{"obs_mean", "obs_var", "obs_count"} as CPU tensors, to store beside θ."""
        return {"obs_mean": torch.from_numpy(self.mean.copy()),
                "obs_var": torch.from_numpy(self.var.copy()),
                "obs_count": torch.tensor(self.count)}

    def load_state_dict(self, weights):
        """Restore what state_dict() returned (tensors or arrays)."""
        self.mean = np.asarray(weights["obs_mean"], dtype=np.float64)
        self.var = np.asarray(weights["obs_var"], dtype=np.float64)
        self.count = int(weights["obs_count"])


def pg_features(obs, scaler=None):
    """φ(s): the observation as float64 (uint8 RAM scaled to 0..1; standardised if a
    FeatureScaler is given) with a constant 1 appended, so the policy can learn a bias.
    Shape (obs_size + 1,)."""
    x = scaled_obs(obs)
    return np.append(scaler(x) if scaler is not None else x, 1.0)


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 9. The REINFORCE training loop
# ════════════════════════════════════════════════════════════════════════════════════════════════
# The algorithmic difference from the DQN loop (section 5): DQN learns every few steps from
# replayed transitions; REINFORCE plays a whole episode, then learns once from that episode
# alone and throws it away. One env at a time: an episode is the unit of learning here.


def run_reinforce(env, policy, episodes, scaler=None, clip_rewards=False, life_loss_reward=0.0,
                  life_loss_ends_return=False, first_episode=1, seed=None, on_episode=None):
    """Train `policy` (LogisticPolicy or SoftmaxPolicy) on `env` for episodes first_episode …
    episodes; returns the number of the last episode played.

    scaler: a FeatureScaler to standardise the features (updated after each episode), or None.
    clip_rewards: learn from sign(reward). life_loss_reward: added to the learning reward at a
    lost life (Atari). life_loss_ends_return: a lost life ends the discounted return.
    on_episode(episode, score, steps), if given, is called after each update with the raw score
    and the episode's length; it may return True to stop early.
    """
    obs, _ = env.reset(seed=seed)
    episode = first_episode - 1
    for episode in range(first_episode, episodes + 1):
        features, actions, rewards, ends, seen = [], [], [], [], []
        terminated = truncated = False
        score = 0.0
        while not (terminated or truncated):
            x = pg_features(obs, scaler)
            action, _ = policy.act(x)
            seen.append(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            features.append(x)
            actions.append(action)
            life_lost = info.get("life_lost", False)
            learn_reward = np.sign(reward) if clip_rewards else reward
            rewards.append(learn_reward + life_loss_reward * life_lost)
            ends.append(life_loss_ends_return and life_lost)
            score += reward
        # REINFORCE needs the whole episode: the return G_t sums every reward after t.
        # After a real terminal nothing more comes (G = 0). After a time limit (truncated,
        # CartPole-v1 at 500 steps) the game could have gone on: without an estimate, the
        # last steps of a perfect episode would look like bad ones. The baseline's V(s_T)
        # supplies that estimate.
        last_value = 0.0
        if truncated and policy.baseline is not None:
            last_value = policy.baseline.values(pg_features(obs, scaler))
        policy.update(rewards, features, actions, last_value, ends)
        if scaler is not None:  # after the update, so θ learned from the features it saw
            scaler.update(np.array([scaled_obs(o) for o in seen]))
        obs, _ = env.reset()
        if on_episode is not None and on_episode(episode, score, len(rewards)):
            break
    return episode


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 10. DQN from pixels: ConvQNetwork and FrameStackReplayBuffer
# ════════════════════════════════════════════════════════════════════════════════════════════════
# The HELL level (--obs pixels): ALE renders a 210×160 grayscale screen; we shrink it to 84×84 and
# stack the last 4, so that one observation shows where the ball is going, not only where it is.
# Gymnasium's AtariPreprocessing does the shrinking with OpenCV, which is not one of our packages;
# an area-averaging resize is two small matrix products (ResizeFrame). Gymnasium's own
# FrameStackObservation does the stacking. Nature DQN also takes the max of the last two frames,
# because some games draw sprites only every other frame; Breakout draws the ball and paddle on
# every frame, so we skip that. The Agent takes these through its `network` and `memory`
# arguments, with n_step=1: the frame-sharing buffer stores one-step transitions only (it refuses
# others); everything else about DQN stays as it is.


def area_resize_matrix(source, target):
    """(target, source) matrix whose rows average the source pixels each target pixel covers
    (fractional overlaps weighted by their share), so `matrix @ column` resizes a column."""
    edges = np.linspace(0.0, source, target + 1)
    matrix = np.zeros((target, source), dtype=np.float32)
    for row, (low, high) in enumerate(itertools.pairwise(edges)):
        for pixel in range(int(low), int(np.ceil(high))):
            matrix[row, pixel] = min(high, pixel + 1) - max(low, pixel)
    return matrix / matrix.sum(axis=1, keepdims=True)


class ResizeFrame(gym.ObservationWrapper):
    """Grayscale (H, W) uint8 frames → (size, size) uint8, by area averaging:
    small = R @ frame @ Cᵀ with R (size, H) and C (size, W) from area_resize_matrix.

    The products run in torch: for matrices this small numpy's BLAS can wake its worker threads
    on every frame, which costs more than the products."""

    def __init__(self, env, size=84):
        super().__init__(env)
        height, width = env.observation_space.shape
        self.rows = torch.from_numpy(area_resize_matrix(height, size))       # (size, H)
        self.cols_t = torch.from_numpy(area_resize_matrix(width, size).T)    # (W, size)
        self.observation_space = gym.spaces.Box(0, 255, (size, size), dtype=np.uint8)

    def observation(self, frame):
        small = self.rows @ torch.from_numpy(frame).to(torch.float32) @ self.cols_t
        return small.round_().to(torch.uint8).numpy()  # (size, size)


# Nature DQN's network: three convolutions find the paddle, ball and bricks wherever they are on
# the screen, then two dense layers map those features to Q-values.


class ConvQNetwork(nn.Module):
    """Nature-DQN convolutional network: (batch, 4, 84, 84) uint8 frames → (batch, n_actions).

    Args:
        frames: stacked frames per observation (the input channels), 4 in Nature DQN.
        action_size: number of discrete actions.
        seed: seeds torch's global RNG so the initial weights are reproducible.
    """

    def __init__(self, frames, action_size, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.layers = nn.Sequential(
            nn.Conv2d(frames, 32, kernel_size=8, stride=4), nn.ReLU(),  # (batch, 32, 20, 20)
            nn.Conv2d(32, 64, kernel_size=4, stride=2), nn.ReLU(),      # (batch, 64, 9, 9)
            nn.Conv2d(64, 64, kernel_size=3, stride=1), nn.ReLU(),      # (batch, 64, 7, 7)
            nn.Flatten(),                                                # (batch, 3136)
            nn.Linear(64 * 7 * 7, 512), nn.ReLU(),
            nn.Linear(512, action_size))
        # "channels last" weights suit the CPU's convolution kernels
        self.to(memory_format=torch.channels_last)

    def forward(self, state):
        """state: (batch, frames, 84, 84), uint8 (scaled by 1/255 here) or float
        → Q-values (batch, action_size), float32."""
        x = state.to(torch.float32)
        if state.dtype == torch.uint8:
            x = x * (1.0 / 255.0)  # pixels 0..255 → 0..1
        return self.layers(x)


# Pixels need a second trick. Consecutive states share 3 of their 4 frames, so storing a state and
# a next state per transition keeps each frame 8 times: 1M transitions would take 56 GB. The
# FrameStackReplayBuffer keeps every frame once, in the order they were seen, and rebuilds the
# stacks when it samples: 1M transitions take 7 GB.


class FrameStackReplayBuffer(ReplayBuffer):
    """A ReplayBuffer for stacked frames, shape (k, H, W), that stores each frame once.

    Frames go into one circular stream in the order they were seen. A transition remembers the
    stream position e of its next state's newest frame; then state = stream[e−k .. e−1] and
    next state = stream[e−k+1 .. e]. When a state does not continue the previous transition (a
    new game), its k frames are written first. Same push/sample interface as ReplayBuffer,
    for one-step transitions only: next_state must be state shifted by one frame, which an
    n-step transition (s_t, s_{t+n}) is not — push() refuses it (use Agent(..., n_step=1)).

    The stream holds a little more than `buffer_size` frames (the extra k frames per game need
    room); when it wraps onto frames that old transitions still use, those transitions are
    dropped, so len() can stay a few percent below buffer_size.
    """

    def _allocate(self, state):
        state = np.asarray(state)
        self.k = state.shape[0]
        self.stream_capacity = self.capacity + self.capacity // 20 + 2 * self.k
        self.frames = np.zeros((self.stream_capacity, *state.shape[1:]), dtype=state.dtype)
        self.frames_written = 0  # frames ever written; frame n lives at n % stream_capacity
        self.next_frame = np.zeros(self.capacity, dtype=np.int64)  # e per transition
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.dones = np.zeros(self.capacity, dtype=np.float32)
        self.steps = np.ones(self.capacity, dtype=np.float32)  # one-step transitions only
        self.states = self.frames  # marks the buffer as allocated

    def _write_frame(self, frame):
        self.frames[self.frames_written % self.stream_capacity] = frame
        self.frames_written += 1

    def _stream_slots(self, newest, length):
        """Stream slots of the `length` frames ending at frame number `newest` (int or (B,))."""
        return (np.asarray(newest)[..., None] + np.arange(1 - length, 1)) % self.stream_capacity

    def push(self, state, action, reward, next_state, done, steps=1):
        """Store one transition: only next_state's newest frame, plus all of `state` when it is
        not the previous transition's next_state. Raises ValueError unless next_state is state
        shifted by one frame (a one-step transition)."""
        if steps != 1 or not np.array_equal(next_state[:-1], state[1:]):
            raise ValueError("FrameStackReplayBuffer stores one-step transitions (next_state = "
                             "state shifted by one frame); an n-step agent's (s_t, s_{t+n}) is "
                             "not one: use Agent(..., n_step=1) with this buffer")
        if self.states is None:
            self._allocate(state)
        last = self.frames_written - 1
        continues = self.size > 0 and np.array_equal(
            self.frames[self._stream_slots(last, self.k)], state)
        if not continues:
            for frame in state:
                self._write_frame(frame)
        self._write_frame(next_state[-1])
        i = self.position
        self.next_frame[i] = self.frames_written - 1
        self.actions[i], self.rewards[i], self.dones[i] = action, reward, done
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        # Drop the oldest transitions whose first frame the stream has overwritten.
        while self.size and (self.frames_written - (self.next_frame[self.position - self.size]
                                                    - self.k) > self.stream_capacity):
            self.size -= 1

    def sample(self):
        """Uniform random Batch, as ReplayBuffer.sample: states and next_states (B, k, H, W)."""
        # the valid transitions are the newest `size`: slots position − size … position − 1
        idx = (self.position - self.size + self.rng.integers(0, self.size, size=self.batch_size)
               ) % self.capacity
        # frames e−k … e for each transition: (B, k + 1, H, W), one fancy-indexing call
        frames = self.frames[self._stream_slots(self.next_frame[idx], self.k + 1)]
        return Batch(*(torch.from_numpy(np.ascontiguousarray(array)).to(self.device) for array in
                       (frames[:, :-1], self.actions[idx], self.rewards[idx], frames[:, 1:],
                        self.dones[idx], self.steps[idx])))


# ████████████████████████████████████████████████████████████████████████████████████████████████
# PART II — THE MACHINERY
# ████████████████████████████████████████████████████████████████████████████████████████████████
# Sections 11–18 turn Part I into a tool: one dataclass of hyperparameters per algorithm with
# per-environment defaults, the run folder (history, checkpoints, curve, lock), evaluation, GIFs,
# plots, benchmarks and the command line. A student may stop reading here.

import argparse
import contextlib
import csv
import dataclasses
import difflib
import functools
import hashlib
import inspect
import json
import multiprocessing
import os
import platform
import random
import shlex
import shutil
import subprocess
import textwrap
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 11. Configuration and per-environment defaults
# ════════════════════════════════════════════════════════════════════════════════════════════════
# Every hyperparameter lives in one dataclass per algorithm, each field with a line of help; the
# command line is generated from these fields. DQN's hyperparameters take their defaults from
# Agent's signature, so each default is written exactly once; ENV_DEFAULTS then adapts them per
# environment (e.g. a 1M-transition buffer for a 3M-step Atari run), and the flags given on the
# command line come last.

CHECKPOINT_FORMAT = 1  # bumped whenever the layout of model.pt changes
MAX_SEED = 2**32 - 1   # the largest seed numpy's legacy np.random.seed takes
DEFAULT_EVAL_EPS = 0.01  # ε when evaluating DQN: the usual Atari protocol (Mnih et al. 2015: 0.05)
# Agent's hyperparameters and their defaults: its keyword-only arguments, less the plumbing ones.
AGENT_DEFAULTS = {name: parameter.default
                  for name, parameter in inspect.signature(Agent).parameters.items()
                  if parameter.kind is inspect.Parameter.KEYWORD_ONLY
                  and name not in ("device", "network", "memory")}


def option(default, help, **kwargs):
    """A dataclass field with its --help text stored in the field's metadata."""
    return field(default=default, metadata={"help": help, **kwargs})


def agent_option(name, help, **kwargs):
    """A DQNConfig field whose default is Agent's default for the argument `name`."""
    return option(AGENT_DEFAULTS[name], help, **kwargs)


@dataclass
class CommonConfig:
    """Settings shared by both algorithms: what to run and how, not how to learn."""

    env_id: str = option("", "Gymnasium environment id")
    seed: int = option(0, "seed for python, numpy, torch and the environment")
    device: str = option("auto", "where the networks run: auto (CUDA for the pixel conv net when "
                                 "a GPU exists; the small MLPs are faster on the CPU), cpu or "
                                 "cuda", choices=("auto", "cpu", "cuda"))
    threads: int = option(1, "CPU threads for torch; 1 is fastest for these small nets and is "
                             "what makes a CPU run bit-for-bit reproducible")
    out: str = option("", "output folder (default: a new folder under runs/)")
    log_every: float = option(10.0, "seconds between progress lines")
    max_minutes: float = option(0.0, "stop training after this many minutes of wall time "
                                     "(0 = no limit; the step/episode budget still applies)")
    save_every: int = option(50, "save model.pt every this many games (0 = only at the end)")
    gif_at_end: bool = option(True, "after training, play one game and write it to agent.gif")
    stop_when_solved: bool = option(False, "stop once the 100-game mean reaches the env's "
                                           "'solved' threshold (CartPole-v1 475, "
                                           "LunarLander-v3 200; Breakout has none)")
    tensorboard: bool = option(False, "also write each game's score and metrics.csv's numbers "
                                      "as TensorBoard scalars, under CleanRL's tag names, into "
                                      "RUN/tensorboard (needs: pip install tensorboard)")


@dataclass
class DQNConfig(CommonConfig):
    """DQN hyperparameters (defaults: Agent's; ENV_DEFAULTS adapts them per environment)."""

    env_id: str = option("ALE/Breakout-v5", "Gymnasium environment id")
    obs: str = option("ram", "Atari observation: ram (128 bytes → MLP) or pixels (84×84 "
                             "grayscale screens, 4 stacked → Nature-DQN conv net)",
                      choices=("ram", "pixels"))
    total_steps: int = option(4_000_000, "training budget in agent steps (one step = 4 frames on "
                                         "Atari); Nature DQN: 50M")
    lr: float = agent_option("lr", "Adam learning rate (Nature DQN: RMSProp 2.5e-4; Adam at 1e-4 "
                                   "is the common modern choice and is stable here)")
    gamma: float = agent_option("gamma", "discount factor γ (Nature DQN: 0.99)")
    buffer_size: int = agent_option("buffer_size", "replay buffer capacity in transitions "
                                                   "(Nature DQN: 1M)")
    batch_size: int = agent_option("batch_size", "transitions per gradient step (Nature DQN: 32)")
    learning_starts: int = agent_option("learning_starts", "transitions stored before the first "
                                                           "gradient step (Nature DQN: 50k)")
    train_every: int = agent_option("train_every", "agent steps between gradient steps (Nature "
                                                   "DQN: 4); the replay ratio is batch-size / "
                                                   "train-every transitions sampled per step")
    target_update_every: int = agent_option("target_update_every", "agent steps between hard "
                                            "target-network copies (Nature DQN: 10k; faster "
                                            "copies let a small MLP learn sooner); ignored when "
                                            "--tau > 0")
    tau: float = agent_option("tau", "soft target update θ′ ← τθ + (1−τ)θ′ after every gradient "
                                     "step; 0 = use hard copies instead")
    eps_start: float = agent_option("eps_start", "exploration ε at the first step")
    eps_end: float = agent_option("eps_end", "exploration ε after the decay (Nature DQN: 0.1; "
                                             "less random play lets longer rallies happen)")
    eps_decay_steps: int = agent_option("eps_decay_steps", "agent steps over which ε falls "
                                                           "linearly (Nature DQN: 1M)")
    lr_decay_steps: int = agent_option("lr_decay_steps", "agent steps over which the learning "
                                                         "rate falls linearly to 0 (0 = "
                                                         "constant): late, small steps keep a "
                                                         "solved task solved")
    hidden_sizes: tuple = agent_option("hidden_sizes", "widths of the MLP's hidden layers")
    double_dqn: bool = agent_option("double_dqn", "Double DQN (van Hasselt 2016): pick a′ with "
                                                  "the online net, value it with the target "
                                                  "net; --no-double-dqn gives Nature DQN's "
                                                  "max_a′ Q_target(s′, a′)")
    loss: str = agent_option("loss", "TD loss: huber (linear for errors beyond 1, the Nature "
                                     "paper's error clipping) or mse (squared everywhere)",
                             choices=("huber", "mse"))
    n_step: int = agent_option("n_step", "learn from n-step returns r_t + γr_{t+1} + … + "
                                         "γ^n·Q(s_{t+n}) (Rainbow: 3; 1 = Nature DQN's one-step "
                                         "target)")
    grad_clip: float = agent_option("grad_clip", "clip the gradient's global norm to this "
                                                 "(0 = off)")
    dueling: bool = agent_option("dueling", "dueling head (Wang et al. 2016): Q = V(s) + A(s, a) "
                                            "− mean_a′ A(s, a′) (RAM and float observations)")
    prioritized: bool = option(False, "prioritized replay (Schaul et al. 2016): sample "
                                      "transitions by |TD error|^α, weighted by importance "
                                      "sampling")
    per_alpha: float = option(inspect.signature(PrioritizedReplayBuffer).parameters["alpha"]
                              .default, "with --prioritized: priority exponent α (0 = uniform; "
                                        "Schaul et al.: 0.6)")
    per_beta: float = agent_option("per_beta", "with --prioritized: importance-sampling "
                                               "exponent β at the start (Schaul et al.: 0.4)")
    per_beta_steps: int = agent_option("per_beta_steps", "with --prioritized: agent steps over "
                                                         "which β rises linearly to 1")
    clip_rewards: bool = option(True, "learn from sign(reward) (scores stay raw); Nature DQN "
                                      "does this on Atari")
    noop_max: int = option(30, "Atari: up to this many random no-ops after reset, so games "
                               "start differently (Nature DQN: 30)")
    sticky_actions: float = option(0.0, "Atari: probability that the previous action repeats "
                                        "(ALE v5 default 0.25; Nature DQN: 0)")
    num_envs: int = option(1, "environments stepped at once; each of their transitions is one "
                              "agent step, so the replay ratio stays the same (RAM and float "
                              "observations only)")
    vector: str = option("workers", "with --num-envs > 1: workers = worker processes (one per "
                                    "spare core) step the envs while this process learns, "
                                    "results in shared memory; async = Gymnasium's "
                                    "AsyncVectorEnv (one process per env); sync = Gymnasium's "
                                    "SyncVectorEnv (all in this process)",
                         choices=("workers", "async", "sync"))


# The DQNConfig fields that are Agent's keyword arguments (the runner passes them on as they are)
AGENT_FIELDS = [f.name for f in dataclasses.fields(DQNConfig) if f.name in AGENT_DEFAULTS]


@dataclass
class PGConfig(CommonConfig):
    """REINFORCE hyperparameters for the numpy LogisticPolicy / SoftmaxPolicy."""

    env_id: str = option("CartPole-v1", "Gymnasium environment id (2 actions: logistic policy; "
                                        "more: softmax policy)")
    episodes: int = option(1000, "training budget in episodes")
    alpha: float = option(0.002, "gradient-ascent step size α")
    init_std: float = option(0.1, "standard deviation of the initial θ (0 = start from the "
                                  "uniform policy)")
    gamma: float = option(0.99, "discount factor γ")
    baseline: bool = option(True, "subtract a learned linear V(s) from the returns (lower "
                                  "variance; also estimates what a time limit cut off)")
    baseline_lr: float = option(0.01, "step size β of the baseline's least-squares fit")
    normalize_returns: bool = option(False, "standardise each episode's returns (or "
                                            "advantages) to mean 0, std 1")
    normalize_obs: bool = option(False, "standardise each feature with running mean and std "
                                        "(FeatureScaler)")
    entropy_coef: float = option(0.0, "weight β of the entropy bonus β·Σ_t H(π(·|s_t)) added to "
                                      "J(θ): keeps the policy from becoming deterministic "
                                      "before it has learned (0 = off)")
    clip_rewards: bool = option(False, "learn from sign(reward) (scores stay raw)")
    life_loss_ends_return: bool = option(False, "Atari: a lost life ends the discounted return "
                                                "(G = 0 after it), as a game over would")
    life_loss_reward: float = option(0.0, "Atari: reward added for learning at a lost life, e.g. "
                                          "-1 (Pong scores −1 for a miss; Breakout gives "
                                          "nothing); scores stay raw")


ALGOS = {"dqn": DQNConfig, "pg": PGConfig}

# Per-environment defaults. A run starts from the dataclass, applies the row for its algorithm and
# environment ("atari" covers every ALE game from RAM; "atari pixels" with --obs pixels), then the
# flags given on the command line, and prints the hyperparameters it ends up with.
ENV_DEFAULTS = {
    # Atari from RAM, a 3M-step run: Nature's 1M buffer (256 MB of uint8 RAM pairs) and 20k steps
    # of random play before learning. A gradient step on 256 transitions every 4 agent steps
    # replays each transition 64 times on average (Nature: 32 every 4, i.e. 8 times): the agent
    # gets more out of each step it plays. With section 6's dueling head this reached a 100-game
    # mean of 100 on Breakout within 1M agent steps on seeds 0, 1 and 2 (at 0.88M–0.94M); the
    # previous default, no dueling and a step every 8, needed 1.5M to more than 2M (ablation.md),
    # and 200 came at 1.96M / 1.88M (seeds 0, 1) instead of 3.2M–4.7M, hence 3M steps, not 4M.
    # Twice the gradient steps halve the speed, so the wall time to 100 is about the same; on
    # the five held-out games (2 seeds, 500k) it scored more on four, a little less on one.
    # Measured on Breakout (results.md), the 100-game mean at 2M agent steps was 101 with
    # batches of 256, 80 with 128 and 68 with 64: a bigger batch costs time per gradient step,
    # but far less than playing more steps would. 32 games are played at once (--num-envs):
    # worker processes step them while this process learns.
    # ε ends at 0.01 (Rainbow's and Dopamine's training ε): at 0.05 one action in 20 is random,
    # and a random move at the wrong moment loses a ball — agents trained at 0.05 averaged about
    # half in their training games of what they scored when evaluated at 0.01 (results.md).
    ("dqn", "atari"): {"total_steps": 3_000_000, "buffer_size": 1_000_000,
                       "learning_starts": 20_000, "batch_size": 256, "train_every": 4,
                       "dueling": True, "num_envs": 32, "eps_end": 0.01},
    # CartPole: 4 floats, reward +1 per step up to 500. DQN learns it in tens of thousands of
    # steps, then tends to forget it: once the buffer holds few failures, Q stops telling the
    # two actions apart and the policy collapses (measured here: 478 → 100 at 150k steps with
    # a constant lr). The learning rate therefore falls to 0 by step 100k, and the 200k buffer
    # keeps every failure seen. The loss is MSE, not Huber: Q ≈ 1/(1−γ) = 100 while the step that
    # drops the pole has the target r = 1, and Huber gives that error of ~100 the gradient of an
    # error of 1, so the rare failures drown among the many ordinary steps (measured: the
    # 100-episode mean reached 475 within 100k steps on 2 seeds of 6 with Huber, 6 of 6 with MSE).
    ("dqn", "CartPole-v1"): {
        "total_steps": 200_000, "buffer_size": 200_000, "batch_size": 128, "lr": 5e-4,
        "lr_decay_steps": 100_000, "learning_starts": 1_000, "train_every": 2, "tau": 0.01,
        "eps_decay_steps": 10_000, "eps_end": 0.01, "clip_rewards": False, "loss": "mse",
        "n_step": 1},  # (3-step returns: solved on seed 0, never on seed 1 — results.md)
    # LunarLander: 8 floats, shaped rewards from −100 (crash) to +100 (landing) plus fuel costs;
    # clipping them to ±1 would erase the difference between a crash and a scrape.
    ("dqn", "LunarLander-v3"): {
        "total_steps": 500_000, "buffer_size": 100_000, "batch_size": 128, "lr": 5e-4,
        "learning_starts": 10_000, "train_every": 4, "target_update_every": 1_000,
        "eps_decay_steps": 50_000, "eps_end": 0.05, "clip_rewards": False, "n_step": 1},
    # Pixels: a conv net costs ~40 ms per gradient step on one CPU core, so we take one every 8
    # agent steps (Nature DQN: every 4) to make 500k steps fit in under an hour. The frame-sharing
    # replay buffer stores one-step transitions (a next state is its state plus one frame).
    ("dqn", "atari pixels"): {
        "total_steps": 500_000, "buffer_size": 1_000_000, "learning_starts": 20_000,
        "batch_size": 32, "train_every": 8, "target_update_every": 2_000, "n_step": 1},
    # REINFORCE on Atari: a linear policy on 128 standardised RAM bytes. Each lost life is
    # scored −1 for learning and ends the return (credit for a miss goes to the steps just
    # before it); the entropy bonus keeps all four actions in play while it learns to track.
    ("pg", "atari"): {
        "episodes": 20_000, "alpha": 1e-3, "init_std": 0.0, "normalize_obs": True,
        "normalize_returns": True, "entropy_coef": 0.01, "clip_rewards": True,
        "life_loss_ends_return": True, "life_loss_reward": -1.0},
    # REINFORCE on LunarLander: 8 floats of different scales and returns in the hundreds, so
    # standardise both; CartPole's settings make θ blow up here (−569 after 1,000 episodes).
    ("pg", "LunarLander-v3"): {
        "episodes": 3_000, "alpha": 1e-3, "normalize_obs": True, "normalize_returns": True,
        "entropy_coef": 0.01},
}

# Flags that fix the shape of the networks or of θ: a resumed run cannot change them.
ARCHITECTURE_FIELDS = ("obs", "hidden_sizes", "dueling")


def env_defaults(algo, env_id, obs="ram"):
    """The ENV_DEFAULTS row for this algorithm and environment ({} if none, or the id is unknown:
    make_env reports that)."""
    try:
        key = ("atari pixels" if obs == "pixels" else "atari") if is_atari(env_id) else env_id
    except gym.error.Error:
        return {}
    return ENV_DEFAULTS.get((algo, key), {})


def check_threads(threads):
    """Raise ValueError unless 1 ≤ threads ≤ 4 × this machine's cores (torch can crash with
    far more threads than cores)."""
    limit = 4 * (os.cpu_count() or 1)
    if not 1 <= threads <= limit:
        raise ValueError(f"--threads must be between 1 and {limit} on this machine, "
                         f"got {threads}")


def validate_config(cfg):
    """Raise ValueError with a one-line message when a setting makes no sense."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{f.name.replace('_', '-')} must be a finite number, got {value}")
    check_threads(cfg.threads)
    checks = [(0 <= cfg.seed <= MAX_SEED, f"--seed must be between 0 and {MAX_SEED:,}, got "
                                          f"{cfg.seed}"),
              (cfg.save_every >= 0, "--save-every must be 0 (only at the end) or positive"),
              (cfg.log_every > 0, "--log-every must be positive"),
              (cfg.max_minutes >= 0, "--max-minutes must be 0 (no limit) or positive"),
              (0 < cfg.gamma <= 1, f"--gamma must be in (0, 1], got {cfg.gamma}")]
    if isinstance(cfg, DQNConfig):
        checks += [
            (cfg.total_steps > 0, f"--total-steps must be positive, got {cfg.total_steps}"),
            (cfg.lr > 0, f"--lr must be positive, got {cfg.lr}"),
            (cfg.buffer_size > 0 and cfg.batch_size > 0,
             "--buffer-size and --batch-size must be positive"),
            (cfg.batch_size <= cfg.buffer_size,
             f"--batch-size {cfg.batch_size} is larger than --buffer-size {cfg.buffer_size}"),
            (cfg.learning_starts <= cfg.buffer_size,
             f"--learning-starts {cfg.learning_starts} is more than --buffer-size "
             f"{cfg.buffer_size} holds: learning would never start"),
            (cfg.train_every > 0 and cfg.target_update_every > 0 and cfg.learning_starts >= 0
             and cfg.eps_decay_steps >= 0 and cfg.noop_max >= 0 and cfg.lr_decay_steps >= 0,
             "step counts must be positive"),
            (cfg.noop_max <= 1000, f"--noop-max must be at most 1000, got {cfg.noop_max}"),
            (0 <= cfg.tau <= 1, f"--tau must be in [0, 1], got {cfg.tau}"),
            (0 <= cfg.eps_end <= cfg.eps_start <= 1, "need 0 ≤ --eps-end ≤ --eps-start ≤ 1"),
            (0 <= cfg.sticky_actions < 1, "--sticky-actions must be in [0, 1)"),
            (cfg.grad_clip >= 0, "--grad-clip must be ≥ 0"),
            (len(cfg.hidden_sizes) > 0 and all(type(width) is int and width > 0
                                               for width in cfg.hidden_sizes),
             "--hidden-sizes must be positive whole widths"),
            (1 <= cfg.n_step <= 100, f"--n-step must be between 1 and 100, got {cfg.n_step}"),
            (cfg.n_step == 1 or cfg.obs != "pixels",
             ("--obs pixels learns from one-step transitions (its replay buffer shares frames "
              "between a state and the next); drop --n-step")),
            (1 <= cfg.num_envs <= 256,
             f"--num-envs must be between 1 and 256, got {cfg.num_envs}"),
            (0 <= cfg.per_alpha <= 10 and 0 <= cfg.per_beta <= 1 and cfg.per_beta_steps >= 0,
             "need 0 ≤ --per-alpha ≤ 10 (Schaul et al.: 0.6; priorities^α overflow far above), "
             "0 ≤ --per-beta ≤ 1 and --per-beta-steps ≥ 0"),
            (cfg.obs != "pixels" or not (cfg.dueling or cfg.prioritized),
             "--dueling and --prioritized are for RAM and float observations (the pixel "
             "network and its frame-sharing buffer have neither); drop them or --obs pixels"),
            (cfg.num_envs == 1 or cfg.obs != "pixels",
             ("--obs pixels takes one env at a time (its frame-sharing replay buffer needs one "
              "stream of frames); drop --num-envs")),
        ]
    else:
        checks += [(cfg.episodes > 0, f"--episodes must be positive, got {cfg.episodes}"),
                   (cfg.alpha > 0, f"--alpha must be positive, got {cfg.alpha}"),
                   (cfg.baseline_lr > 0, f"--baseline-lr must be positive, got {cfg.baseline_lr}"),
                   (cfg.entropy_coef >= 0, f"--entropy-coef must be ≥ 0, got {cfg.entropy_coef}"),
                   (cfg.init_std >= 0, f"--init-std must be ≥ 0, got {cfg.init_std}")]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def hyperparameter_text(cfg):
    """The config's fields as `name=value` pairs, wrapped into lines of at most 100 characters."""
    lines, line = [], " "
    for f in dataclasses.fields(cfg):
        item = f" {f.name}={getattr(cfg, f.name)}"
        if len(line) + len(item) > 100:
            lines.append(line)
            line = " "
        line += item
    return "\n".join([*lines, line])


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 12. Seeding, device and environments
# ════════════════════════════════════════════════════════════════════════════════════════════════
# Reproducibility needs every random source seeded in one place: Python's `random`, numpy, torch,
# and the environment (seeded by its first `reset(seed=...)`). On the CPU with one thread, the same
# seed then gives the same games, score for score. GPUs may pick non-deterministic kernels.


def seed_everything(seed):
    """Seed python's `random`, numpy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name, obs="ram"):
    """(torch.device, reason) for 'auto' | 'cpu' | 'cuda'; 'cuda' without a GPU is an error.

    'auto' uses CUDA only for the pixel conv net: an MLP on 128 bytes is so small that copying
    each batch to the GPU and back costs more than computing it on the CPU (measured: 0.75× the
    CPU's agent steps/s on an H100 machine)."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu"), "auto: no CUDA GPU"
        if obs != "pixels":
            return torch.device("cpu"), "auto: a small MLP runs faster on the CPU than on a GPU"
        return torch.device("cuda"), "auto: the conv net runs faster on the GPU"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU "
                         "(use --device cpu or auto)")
    return torch.device(name), "asked for"


def is_atari(env_id):
    """True for ids that ale-py registers, e.g. 'ALE/Breakout-v5' or 'BreakoutNoFrameskip-v4'.

    Raises gymnasium's NameNotFound/VersionNotFound for ids that are not registered."""
    spec = gym.spec(env_id)
    return isinstance(spec.entry_point, str) and spec.entry_point.startswith("ale_py")


ATARI_FRAMESKIP = 4  # emulator frames per agent step on Atari (frames = 4 × agent steps)


def make_env(env_id, noop_max=30, sticky_actions=0.0, render_mode=None, obs="ram"):
    """Build an environment. Atari games skip 4 frames, get the AtariLives wrapper and read RAM
    (obs="ram": 128 uint8) or the screen (obs="pixels": (4, 84, 84) uint8, the last 4 frames).

    Raises ValueError with a one-line explanation for unknown ids, missing optional packages,
    pixels asked of a non-Atari env, observations that are not arrays, and action spaces that
    are not discrete.
    """
    try:
        if is_atari(env_id):
            env = gym.make(env_id, obs_type="grayscale" if obs == "pixels" else "ram",
                           frameskip=ATARI_FRAMESKIP, repeat_action_probability=sticky_actions,
                           render_mode=render_mode)
            env = AtariLives(env, noop_max=noop_max)
            if obs == "pixels":
                # padding_type="reset": a new game's first state is its first frame, 4 times.
                env = gym.wrappers.FrameStackObservation(ResizeFrame(env, 84), 4,
                                                         padding_type="reset")
        elif obs == "pixels":
            raise ValueError(f"--obs pixels needs an Atari env (e.g. ALE/Breakout-v5), "
                             f"not {env_id}")
        else:
            env = gym.make(env_id, render_mode=render_mode)
    except gym.error.DependencyNotInstalled as error:
        if "box2d" in str(error).lower() or "box2d" in str(gym.spec(env_id).entry_point):
            # Box2D's prebuilt wheel installs anywhere; gymnasium[box2d] needs swig to build.
            raise ValueError(f"{env_id} needs Box2D: pip install box2d pygame") from None
        raise ValueError(f"{env_id} needs an optional package: {error}") from None
    except ImportError as error:  # an env whose module imports a package that is not installed
        missing = (f"the package {error.name!r} (pip install {error.name})"
                   if isinstance(error, ModuleNotFoundError) and error.name else
                   f"a package that is not installed ({first_line(error)})")
        raise ValueError(f"{env_id} needs {missing}") from None
    except gym.error.Error:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown environment {env_id!r}{hint}") from None
    problem = None
    if not isinstance(env.action_space, gym.spaces.Discrete):
        problem = (f"{env_id} has a {type(env.action_space).__name__} action space; DQN and the "
                   "policy gradient here need discrete actions")
    elif not isinstance(env.observation_space, gym.spaces.Box):
        problem = (f"{env_id} has a {type(env.observation_space).__name__} observation space; "
                   "DQN and the policy gradient here need an array (Box) of numbers")
    if problem:
        env.close()
        raise ValueError(problem)
    return env


class EnvErrors(gym.Wrapper):
    """Turns an exception raised inside the env's step() into a one-line TrainingError."""

    def step(self, action):
        try:
            return self.env.step(action)
        except Exception as error:
            raise TrainingError(env_error_text(error)) from error


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 13. The run folder: lock, history, checkpoints, progress line
# ════════════════════════════════════════════════════════════════════════════════════════════════
# Nothing is lost when training stops early: Ctrl-C (SIGINT) and SIGTERM raise StopTraining, and
# the runner's `finally` saves the checkpoint, history and curve before the exit (130 / 143).
# Every file is written so that a crash at any instant leaves the previous version whole: a new
# version goes to a temporary file that is renamed over the old one. One process at a time owns
# a run folder, through a lock file holding its pid.


# The signals that stop a run with everything saved (SIGHUP: the terminal was closed;
# SIGUSR2: a Slurm job's warning shortly before its time limit; neither on Windows).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR2")
                     if hasattr(signal, name))


class StopTraining(BaseException):
    """Raised by the STOP_SIGNALS handler; `exit_code` is 128 + the signal number.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` swallows it."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, an env that raised); the message says why."""


@contextlib.contextmanager
def stop_on_signals():
    """While active, STOP_SIGNALS (Ctrl-C, SIGTERM, the terminal closed, …) raise StopTraining
    in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(signum, frame):
        raise StopTraining(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old_handler in previous.items():
            signal.signal(sig, old_handler)


def first_line(error):
    """An exception's reason in one line (OSError's strerror where it has one)."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0]


def write_failed(path, error):
    """The OSError to raise when appending to `path` failed: it names the file and the cause
    (a full disk's "[Errno 27] File too large" alone names neither)."""
    return OSError(f"could not write {path} ({error.strerror or first_line(error)})")


def replace_file(path, write):
    """Write a file atomically: `write(tmp_path)` fills a temporary file beside `path`, which is
    then renamed over `path`. On any failure the temporary file is removed, `path` is left as it
    was, and an OSError names `path` and the real cause."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:  # a signal (StopTraining) too: no temporary file stays behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if not isinstance(error, Exception):
            raise
        cause = first_line(error)
        if not isinstance(error, OSError):  # e.g. torch's "[enforce fail …] unexpected pos"
            cause += ": is the disk full, or a file-size limit reached?"
        raise OSError(f"could not write {path} ({cause}); the previous version is kept") from None


class RunLock:
    """Owns a run folder for one process: the file `run.lock` holds its pid.

    On POSIX the file is also locked with flock, which the kernel releases when the process dies,
    so a lock left by a killed process is recognised and taken over. Elsewhere (Windows) the
    file's existence is the lock; remove it by hand after a crash.
    """

    def __init__(self, folder):
        self.path = Path(folder) / "run.lock"
        self.fd = None

    def acquire(self):
        """Take the lock, or raise ValueError naming the process that holds it."""
        try:
            import fcntl
        except ImportError:
            fcntl = None
        # O_NOFOLLOW: a run.lock that is a symbolic link is refused, never followed (opening
        # it would truncate whatever it points to)
        flags = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                 | (0 if fcntl else os.O_EXCL))
        while True:
            try:
                fd = os.open(self.path, flags, 0o644)
            except FileExistsError:
                raise ValueError(f"{self.path.parent} is in use by another run (process "
                                 f"{self.path.read_text().strip()}; remove {self.path} if that "
                                 "process is gone)") from None
            except OSError as error:
                if self.path.is_symlink():
                    raise ValueError(f"{self.path} is a symbolic link, which the tool does not "
                                     "follow; remove it") from None
                raise ValueError(f"cannot write to {self.path.parent}: "
                                 f"{first_line(error)}") from None
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ValueError(f"{self.path.parent} is in use by another run "
                                 f"(process {owner}); wait for it or choose another folder"
                                 ) from None
            # The holder we waited for may have removed the file as we opened it: lock the
            # file that is there now.
            if os.path.exists(self.path) and os.path.samestat(os.fstat(fd), os.stat(self.path)):
                break
            os.close(fd)
        previous = os.read(fd, 32).decode(errors="replace").strip()
        if previous:
            print(f"{self.path} was left by process {previous}, which is gone; taking it over",
                  flush=True)
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self.fd)
            self.fd = None


HISTORY_FIELDS = ["episode", "env_step", "score", "seconds"]


def read_history(path):
    """The rows of a history.csv as dicts (episode, env_step, score, seconds), read like a file
    people edit: a spreadsheet's byte-order mark is fine, and a last line without its line end
    (cut short by a crash) is left out. Raises ValueError naming the file (and the line) for
    anything else: unreadable bytes, other columns, a broken or out-of-order row."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} cannot be read as a history.csv ({first_line(error)})") from None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines.pop()  # written only in part when the process died
    if not lines:
        return []
    reader = csv.reader(lines)
    header = next(reader)
    if header != HISTORY_FIELDS:
        raise ValueError(f"{path} is not a history.csv of this tool (its columns are "
                         f"{','.join(header)}; expected {','.join(HISTORY_FIELDS)})")
    rows = []
    for line_number, values in enumerate(reader, start=2):
        try:
            row = dict(zip(HISTORY_FIELDS, values, strict=True))
            int(row["env_step"]), float(row["score"]), float(row["seconds"])
            if int(row["episode"]) != len(rows) + 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"{path} line {line_number} is not game {len(rows) + 1}'s row "
                             f"({','.join(values)[:60]}); fix or remove it") from None
        rows.append(row)
    return rows


def write_history(path, rows):
    """Replace history.csv, atomically, with the header and `rows`."""
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(HISTORY_FIELDS)
            writer.writerows([row[k] for k in HISTORY_FIELDS] for row in rows)
            f.flush()
            os.fsync(f.fileno())
    replace_file(path, write)


# Provenance: what a run ran with, in config.json and model.pt, so a result can be checked
# against the same versions later (and a resumed or evaluated checkpoint says where they differ).


def cpu_model():
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def file_version():
    """This file's version: the git commit when it runs from a checkout (with "+changes" where
    the file differs from that commit), and always the SHA-256 of the file itself."""
    source = Path(__file__).resolve()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    version = {"file_sha256": digest, "git_commit": None}
    try:
        def git(*args):
            return subprocess.run(["git", "-C", str(source.parent), *args], capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()
        version["git_commit"] = git("rev-parse", "HEAD") + (
            "+changes" if git("status", "--porcelain", "--", source.name) else "")
    except (OSError, subprocess.SubprocessError):
        pass  # not a checkout, or no git: the hash says which file it was
    return version


def library_versions():
    """{"python", "torch", "gymnasium", "ale_py", "numpy": version string} of this process."""
    # (str(): torch.__version__ is a str subclass that torch.load(weights_only=True) refuses)
    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "gymnasium": str(gym.__version__), "ale_py": str(ale_py.__version__),
            "numpy": str(np.__version__)}


def provenance(device="cpu", command=None):
    """{versions of Python, torch, gymnasium, ale-py, numpy; device; CPU; `command` (the
    arguments given, default sys.argv's); start time (UTC); the file's version} for
    config.json and model.pt."""
    return {**library_versions(), "device": str(device), "cpu": cpu_model(),
            "os": platform.platform(),
            "command": " ".join(shlex.quote(a) for a in ["python", Path(__file__).name,
                                                          *(command or sys.argv[1:])]),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **file_version()}


def version_differences(checkpoint):
    """'torch 2.12.0 → 2.13.0, numpy 1.26.4 → 2.4.6': the versions a checkpoint was made with
    that differ from this Python's ('' where none do, or the checkpoint predates provenance)."""
    made, now = checkpoint.get("provenance"), library_versions()
    if not isinstance(made, dict):
        return ""
    return ", ".join(f"{name} {made[name]} → {now[name]}" for name in now
                     if isinstance(made.get(name), str) and made[name] != now[name])


def note_other_versions(checkpoint, name):
    """Say in one line, and go on, when checkpoint `name` was made with other versions."""
    differences = version_differences(checkpoint)
    if differences:
        print(f"note: {name} was made with other versions ({differences}); going on", flush=True)


# metrics.csv: what the learner did, one row per progress line (CleanRL writes the same to
# TensorBoard as charts/SPS, losses/td_loss, losses/q_values …; SB3 as time/fps, train/loss …).
# The first columns are every run's; the learner adds its own (DQN: ε, lr, loss, mean Q of the
# learning batch; REINFORCE: step size, ‖θ‖).
METRICS_FIELDS = ["step", "seconds", "games", "mean100", "steps_per_second"]


def metric_text(value):
    """A number as metrics.csv writes it: whole numbers in full (step 3000000, not 3e+06),
    others to 6 significant digits; None (a column this row lacks) as nan."""
    value = math.nan if value is None else float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def read_metrics(path):
    """(columns, rows) of a metrics.csv, rows as dicts of floats; ([], []) if there is none.
    Rows that do not parse (a line cut by a kill -9) are skipped, as are rows after them."""
    try:
        with open(path, newline="") as f:
            lines = list(csv.reader(f))
    except FileNotFoundError:
        return [], []
    if not lines or lines[0][:len(METRICS_FIELDS)] != METRICS_FIELDS:
        return [], []
    columns, rows = lines[0], []
    for values in lines[1:]:
        try:
            rows.append(dict(zip(columns, map(float, values), strict=True)))
        except ValueError:
            break
    return columns, rows


# TensorBoard (optional): the same numbers as history.csv and metrics.csv, under the tag names
# CleanRL's scripts use, so a student's dashboards and habits carry over. Columns without a
# CleanRL name go under charts/.
TENSORBOARD_TAGS = {"mean100": "charts/mean100", "steps_per_second": "charts/SPS",
                    "epsilon": "charts/epsilon", "learning_rate": "charts/learning_rate",
                    "loss": "losses/td_loss", "q_mean": "losses/q_values",
                    "episode_length": "charts/episodic_length"}


def tensorboard_writer(folder):
    """torch's TensorBoard SummaryWriter into `folder`; ValueError (one line) without the
    tensorboard package. Called with None only to check that the package is there."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("--tensorboard needs the tensorboard package: pip install tensorboard "
                         "(metrics.csv holds the same numbers without it)") from None
    return None if folder is None else SummaryWriter(str(folder), flush_secs=10)


class RunRecorder:
    """Owns a run's files: history.csv (one row per game), metrics.csv (one row per progress
    line), model.pt, config.json and curve.png.

    Args:
        out_dir: the run's folder (it exists, and this process holds its lock).
        algo: "dqn" or "pg", stored in the checkpoint.
        cfg: the run's config dataclass, stored in the checkpoint and config.json as plain data.
        env: the training env (its id, shapes and solved threshold are recorded).
        snapshot: function returning {"weights": ..., "train_state": ...} to checkpoint.
        resume_from: a loaded checkpoint to continue from, or None. history.csv keeps the games
            the checkpoint counts; games played after it (before a crash) are dropped.
    """

    def __init__(self, out_dir, algo, cfg, env, snapshot, resume_from=None, device="cpu",
                 command=None):
        self.out_dir = Path(out_dir)
        self.algo, self.cfg, self.snapshot = algo, cfg, snapshot
        self.meta = {"env_id": env.spec.id, "obs_shape": list(env.observation_space.shape),
                     "n_actions": int(env.action_space.n),
                     "provenance": provenance(device, command)}
        self.threshold = env.spec.reward_threshold  # "solved" (None where Gymnasium sets none)
        self.solved_at = None                       # the game at which the mean first reached it
        self.exit_code = 0               # 130/143 after a signal
        self.keep_last_checkpoint = False  # True after a failure that made the weights unusable
        self.saved_at = None             # (games, env step) of the last checkpoint written
        self.history_path = self.out_dir / "history.csv"
        rows = []
        if resume_from is not None:
            games = resume_from["progress"]["games"]
            rows = read_history(self.history_path)
            if len(rows) > games:  # played after the last checkpoint, before a crash: said
                print(f"{self.history_path}: games {games + 1}–{len(rows)} came after the last "
                      f"checkpoint (game {games}); they are dropped and played anew", flush=True)
            rows = rows[:games]
            if len(rows) < games:
                raise ValueError(f"{self.history_path} holds {len(rows)} games but the "
                                 f"checkpoint counts {games}; it cannot be resumed")
        self.scores = [float(row["score"]) for row in rows]
        self.game_steps = [int(row["env_step"]) for row in rows]  # the step each game ended at
        self.metrics_path = self.out_dir / "metrics.csv"
        self.metrics_columns = None  # set by the first row (METRICS_FIELDS + the learner's)
        self.tensorboard = (tensorboard_writer(self.out_dir / "tensorboard")
                            if cfg.tensorboard else None)
        if resume_from is not None:  # keep the rows up to the checkpoint, as for history.csv
            step = resume_from["progress"]["env_step"]
            columns, kept = read_metrics(self.metrics_path)
            kept = [row for row in kept if row["step"] <= step]
            if columns:
                self.metrics_columns = columns
                self.write_metrics_file(kept)
        previous_seconds = float(rows[-1]["seconds"]) if rows else 0.0
        self.start = time.time() - previous_seconds  # `seconds` continues across a resume
        self.env_step = resume_from["progress"]["env_step"] if resume_from else 0
        self.invocation_start = time.time()
        self.last_log, self.last_log_step = time.time(), self.env_step
        self.speed_from = None  # (time, budget units done) at the first progress line: the ETA
        self.deadline = time.time() + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
        # Games after the checkpoint are dropped by writing the kept rows to a new file that
        # replaces history.csv in one rename: the rows on disk are never truncated in place.
        write_history(self.history_path, rows)
        self._file = open(self.history_path, "a", newline="")
        self._writer = csv.writer(self._file)
        replace_file(self.out_dir / "config.json", lambda tmp: Path(tmp).write_text(
            json.dumps({"algo": algo, **dataclasses.asdict(cfg),
                        "provenance": self.meta["provenance"]}, indent=1) + "\n"))

    @property
    def games(self):
        return len(self.scores)

    def elapsed(self):
        return time.time() - self.start

    def mean100(self):
        """Mean score of the last 100 games (nan before the first game)."""
        return float(np.mean(self.scores[-100:])) if self.scores else float("nan")

    def end_game(self, score, env_step):
        """Record one finished game; every `save_every` games, also save a checkpoint. A game
        whose row cannot be written (a full disk) is not counted, so the checkpoint saved at
        the end agrees with history.csv and the run resumes."""
        try:
            self._writer.writerow([self.games + 1, env_step, score, f"{self.elapsed():.1f}"])
            self._file.flush()
        except OSError as error:
            raise write_failed(self.history_path, error) from None
        self.scores.append(float(score))
        self.game_steps.append(env_step)
        self.env_step = env_step
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("charts/episodic_return", score, env_step)
        # Gymnasium's convention: solved = a mean over 100 consecutive games of at least the
        # env's reward_threshold. Said once; training goes on unless --stop-when-solved.
        if (self.threshold is not None and self.solved_at is None and self.games >= 100
                and self.mean100() >= self.threshold):
            self.solved_at = self.games
            print(f"solved: 100-game mean {self.mean100():.1f} ≥ {self.threshold:g} at game "
                  f"{self.games}, step {env_step:,}, {self.elapsed() / 60:.1f} min", flush=True)
        if self.cfg.save_every and self.games % self.cfg.save_every == 0:
            self.save_checkpoint()

    def write_metrics_file(self, rows):
        """Replace metrics.csv, atomically, with its header and `rows`."""
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(self.metrics_columns)
                writer.writerows([metric_text(row.get(k)) for k in self.metrics_columns]
                                 for row in rows)
        replace_file(self.metrics_path, write)

    def add_metrics(self, values):
        """Append one row (a dict: METRICS_FIELDS and the learner's own) to metrics.csv."""
        if self.metrics_columns is None:
            self.metrics_columns = list(values)
            self.write_metrics_file([])
        try:
            with open(self.metrics_path, "a", newline="") as f:
                csv.writer(f).writerow([metric_text(values.get(k))
                                        for k in self.metrics_columns])
        except OSError as error:
            raise write_failed(self.metrics_path, error) from None
        if self.tensorboard is not None:
            for name, value in values.items():
                if (name not in ("step", "seconds", "games") and value is not None
                        and math.isfinite(value)):   # (no loss before the first step)
                    self.tensorboard.add_scalar(TENSORBOARD_TAGS.get(name, f"charts/{name}"),
                                                value, values["step"])

    def maybe_log(self, env_step, done, total, unit, extra=lambda: "", force=False,
                  metrics=dict):
        """Print a progress line if `log_every` seconds have passed (or `force`): `done` of
        `total` budget units (steps or episodes), games, scores, `extra()` (a function, so its
        text is built only when printed), speed and an ETA; and add the same moment, with the
        learner's `metrics()` (a dict of numbers), to metrics.csv. The first line is preceded by
        a legend of the columns; the ETA appears once a log interval has measured the speed."""
        now = time.time()
        if not (force or self.log_due()):
            return
        if self.speed_from is None:  # the first line: the columns' legend, and the speed's start
            print(f"columns: {unit}s done/budget | games finished | last: the last game's score "
                  "| mean100: mean score of the last 100 games | " + (
                      "ε, loss: exploration rate, last TD loss | " if unit == "step" else "")
                  + "agent steps/s since the last line | minutes, estimated time left",
                  flush=True)
        rate = (env_step - self.last_log_step) / max(now - self.last_log, 1e-9)
        if self.speed_from is not None and now - self.last_log > 5 * self.cfg.log_every + 60:
            # A long silence: the process was stopped (Ctrl-Z, SIGSTOP, a sleeping laptop).
            # The ETA measures the speed afresh from here, not over the pause.
            self.speed_from = (now, done)
        last = f"{self.scores[-1]:.0f}" if self.scores else "-"
        mean = f"{self.mean100():7.2f}" if self.scores else "      -"
        eta = "ETA -"
        if done >= total:
            eta = "ETA 0 s"
        elif self.speed_from is not None and now > self.speed_from[0]:
            # units per second since the first line: at least one log interval's worth
            speed = (done - self.speed_from[1]) / (now - self.speed_from[0])
            left = (total - done) / speed if speed > 0 else math.inf
            left = max(0.0, min(left, self.deadline - now))
            eta = ("ETA ?" if not math.isfinite(left) else
                   f"ETA {left / 60:.0f} min" if left >= 60 else f"ETA {left:.0f} s")
        print(f"{unit} {done:>,}/{total:,} | games {self.games:>5} | last {last:>4} | "
              f"mean100 {mean} | {extra()}{rate:6.0f} steps/s | "
              f"{self.elapsed() / 60:5.1f} min, {eta}", flush=True)
        if env_step > 0:
            self.add_metrics({"step": env_step, "seconds": round(self.elapsed(), 1),
                              "games": self.games, "mean100": self.mean100(),
                              "steps_per_second": round(rate, 1), **metrics()})
        if self.speed_from is None:
            self.speed_from = (now, done)
        self.last_log, self.last_log_step = now, env_step

    def log_due(self):
        """True once `log_every` seconds have passed since the last progress line."""
        return time.time() - self.last_log >= self.cfg.log_every

    def should_stop(self):
        """True (and says why) once this invocation has trained for --max-minutes, or the env is
        solved and --stop-when-solved was given."""
        if self.cfg.stop_when_solved and self.solved_at is not None:
            print("--stop-when-solved: stopping", flush=True)
            return True
        if time.time() < self.deadline:
            return False
        print(f"--max-minutes {self.cfg.max_minutes:g} reached", flush=True)
        return True

    def stopped_by(self, stop):
        """Note a StopTraining (SIGINT/SIGTERM): the run ends, saved, with its exit status."""
        print(f"\n{stop}: stopping and saving what was learned so far", flush=True)
        self.exit_code = stop.exit_code

    def save_checkpoint(self):
        """Write model.pt atomically (replace_file), so a crash or a full disk during the save
        leaves the previous checkpoint whole.

        The file holds plain data (config, env id, shapes, counters) and tensors only, so it
        loads with torch.load(weights_only=True), which runs no code from the file.
        """
        payload = {"format_version": CHECKPOINT_FORMAT, "algo": self.algo, **self.meta,
                   "config": dataclasses.asdict(self.cfg),
                   "progress": {"env_step": self.env_step, "games": self.games},
                   **self.snapshot()}
        replace_file(self.out_dir / "model.pt", lambda tmp: torch.save(payload, tmp))
        self.saved_at = (self.games, self.env_step)

    def diverged(self, error):
        """A TrainingError for a FloatingPointError from the learner; the unusable weights will
        not be saved over the last good checkpoint."""
        self.keep_last_checkpoint = True
        games, step = self.saved_at
        return TrainingError(f"{error}; model.pt keeps the last good checkpoint (game {games}, "
                             f"step {step:,})")

    def finish(self, env_step):
        """Final progress line, history, checkpoint (unless it is unusable) and curve. A failed
        write is reported after the others were tried."""
        self.env_step = max(self.env_step, env_step)
        errors = []
        try:
            self._file.close()
        except OSError as error:   # its last row did not fit: the checkpoint is still saved
            errors.append(write_failed(self.history_path, error))
        if self.tensorboard is not None:
            self.tensorboard.close()
        writers = [] if self.keep_last_checkpoint else [self.save_checkpoint]
        writers.append(lambda: replace_file(self.out_dir / "curve.png", lambda tmp: plot_curves(
            [(self.game_steps, self.scores, "")], tmp, f"{self.algo.upper()} {self.cfg.env_id}",
            self.threshold, ATARI_FRAMESKIP if is_atari(self.cfg.env_id) else None)))
        for write in writers:
            try:
                write()
            except OSError as error:
                errors.append(error)
        if errors:
            raise errors[0]


def machine_memory():
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_buffer_fits(buffer_size, observation_space):
    """Raise ValueError if a replay buffer of observations would not fit in this machine's RAM."""
    shape = observation_space.shape
    # a flat observation is stored twice (state, next state); stacked frames once (+ 5 %)
    values = 2.0 * math.prod(shape) if len(shape) < 3 else 1.05 * math.prod(shape[1:])
    needed = float(buffer_size) * observation_space.dtype.itemsize * values
    total = machine_memory()
    if needed > 0.8 * total:
        raise ValueError(f"--buffer-size {buffer_size:,} needs {needed / 2**30:,.1f} GiB for "
                         f"{observation_space.shape} observations; this machine has "
                         f"{total / 2**30:.1f} GiB (lower --buffer-size)")


def resume_point(cfg, resume_from):
    """(games already played, seed for this invocation). A resumed run is seeded with
    cfg.seed + games played, so it draws fresh random numbers instead of replaying its start."""
    games_done = resume_from["progress"]["games"] if resume_from else 0
    return games_done, cfg.seed + games_done


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 14. Runners: a config onto Part I's classes and loops
# ════════════════════════════════════════════════════════════════════════════════════════════════
# train_dqn and train_pg build the env and the learner from a config, restore a checkpoint when
# resuming, and run Part I's loop with a hook that feeds the RunRecorder.


def check_network_fits(obs_size, hidden_sizes, n_actions):
    """Raise ValueError if an MLP of these widths would not fit in this machine's RAM: its
    float32 weights are held five times (online and target nets, gradients, Adam's 2 moments)."""
    widths = [obs_size, *hidden_sizes, n_actions]
    parameters = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    needed = 5 * 4 * parameters
    total = machine_memory()
    if needed > 0.8 * total:
        raise ValueError(f"--hidden-sizes {' '.join(map(str, hidden_sizes))}: the network needs "
                         f"{needed / 2**30:,.1f} GiB; this machine has {total / 2**30:.1f} GiB "
                         "(choose smaller widths)")


def make_agent(cfg, obs_shape, n_actions, seed, device="cpu"):
    """An Agent with `cfg`'s hyperparameters; stacked frames (obs_shape (k, H, W)) get a
    ConvQNetwork and a FrameStackReplayBuffer."""
    if len(obs_shape) < 3:
        check_network_fits(math.prod(obs_shape), cfg.hidden_sizes, n_actions)
    network = memory = None
    sampling_seed = np.random.SeedSequence(seed).spawn(2)[1]  # as Agent seeds its own buffer
    if len(obs_shape) == 3:
        network = ConvQNetwork(obs_shape[0], n_actions, seed)
        memory = FrameStackReplayBuffer(n_actions, cfg.buffer_size, cfg.batch_size,
                                        sampling_seed, device)
    elif cfg.prioritized:
        memory = PrioritizedReplayBuffer(n_actions, cfg.buffer_size, cfg.batch_size,
                                         sampling_seed, device, cfg.per_alpha)
    hyperparameters = {name: getattr(cfg, name) for name in AGENT_FIELDS}
    return Agent(obs_shape, n_actions, seed, **hyperparameters, device=device, network=network,
                 memory=memory)


def restore_agent(agent, cfg, resume_from):
    """Load a checkpoint into `agent`; the learning rate is the config's (a new --lr counts)."""
    try:
        agent.load_state_dict(resume_from["weights"], resume_from["train_state"])
    except (RuntimeError, KeyError, ValueError, TypeError):  # missing keys or other shapes
        raise ValueError(f"the weights in the {resume_from['env_id']} checkpoint do not fit the "
                         "network its config describes") from None
    stored_lr = agent.optimizer.param_groups[0]["lr"]
    for group in agent.optimizer.param_groups:
        group["lr"] = cfg.lr
    if stored_lr != cfg.lr and not cfg.lr_decay_steps:
        print(f"learning rate: {cfg.lr:g} (the checkpoint's optimizer had {stored_lr:g})",
              flush=True)


def announce(title, cfg, out_dir, resume_from):
    """Print what is being trained and every hyperparameter it uses, once."""
    verb = f"resuming {out_dir} at game {resume_from['progress']['games']}" if resume_from else (
        f"writing to {out_dir}")
    if resume_from:
        note_other_versions(resume_from, "model.pt")
    print(f"{title}; {verb}\nhyperparameters (also in config.json):\n"
          f"{hyperparameter_text(cfg)}", flush=True)


def train_dqn(cfg, out_dir, device, resume_from=None, command=None):
    """Train a DQN Agent as `cfg` says (continuing `resume_from` if given); returns the recorder.

    A resumed run restores weights, target network, optimizer and counters (so ε continues on
    its schedule) but not the replay buffer, which refills for `learning_starts` steps first.
    """
    env = make_env(cfg.env_id, cfg.noop_max, cfg.sticky_actions, obs=cfg.obs)
    check_buffer_fits(cfg.buffer_size, env.observation_space)
    _, seed = resume_point(cfg, resume_from)
    agent = make_agent(cfg, env.observation_space.shape, env.action_space.n, seed, device)
    if resume_from:
        restore_agent(agent, cfg, resume_from)
    recorder = RunRecorder(out_dir, "dqn", cfg, env, agent.state_dict, resume_from, device,
                           command)
    if not resume_from:
        recorder.save_checkpoint()  # so the folder always holds a checkpoint to resume
    variant = "Double DQN" if cfg.double_dqn else "DQN (Nature target)"
    announce(f"{variant} on {cfg.env_id}: obs {env.observation_space.shape} "
             f"{env.observation_space.dtype}, {env.action_space.n} actions, device {device}",
             cfg, out_dir, resume_from)
    env.close()  # (it gave the shapes; make_vector_env below makes the envs that train)

    def status():
        if agent.warm:
            return f"ε {agent.epsilon(agent.t_step):.3f} | loss {agent.last_loss:.4f} | "
        return (f"filling the replay buffer {len(agent.memory):,}/"
                f"{max(cfg.learning_starts, cfg.batch_size):,} | ")

    def metrics():
        return {"epsilon": agent.epsilon(agent.t_step),
                "learning_rate": agent.optimizer.param_groups[0]["lr"],
                "loss": agent.last_loss, "q_mean": agent.last_q_mean}

    def on_step(step, game_score):
        if game_score is not None:
            recorder.end_game(game_score, step)
        recorder.maybe_log(step, step, cfg.total_steps, "step", status, metrics=metrics)
        return recorder.should_stop()

    try:
        with contextlib.closing(make_vector_env(cfg)) as envs:
            run_dqn(envs, agent, cfg.total_steps, cfg.clip_rewards, seed, on_step)
    except StopTraining as stop:
        recorder.stopped_by(stop)
    except FloatingPointError as error:
        raise recorder.diverged(error) from None
    finally:
        recorder.maybe_log(agent.t_step, agent.t_step, cfg.total_steps, "step", status,
                           force=True, metrics=metrics)
        recorder.finish(agent.t_step)
    return recorder


# Many environments at once (--num-envs N; Atari from RAM plays 32). One step of Breakout costs
# the emulator ~0.4 ms and the learner about half as much again. Worker processes step the N
# emulators while this process learns from the last batch of transitions, so a machine with a
# spare core trains faster than one env can even be stepped. Each transition still goes through
# agent.step (with its env's number as the n-step stream), so ε, the learning rate and the
# replay ratio follow agent steps as with one env.


# How EnvWorkers shares the envs out on a machine with C cores. This process learns as well as
# acting. Measured on one core here (the default RAM MLP, one torch thread): a gradient step on
# B transitions takes about 0.75 + 0.0127·B ms (1.6 ms at 64, 4.0 ms at 256) and one Breakout
# env step 0.35 ms, so with a gradient step every train_every agent steps, learning costs
# s = (0.75 + 0.0127·B) / train_every / 0.35 env steps per agent step (2.9 for the Atari
# default, 256 every 4). With W = C − 1 worker processes and L envs stepped here, both sides
# finish a round together when s·N + L = (N − L) / W; where s·W ≥ 1 this process has enough
# to do learning, and steps no env. Which process steps an env does not change what it
# returns, so the split changes the speed of a run, never its result.
GRADIENT_MS, GRADIENT_MS_PER_SAMPLE, ENV_STEP_MS = 0.75, 0.0127, 0.35


def learner_share(batch_size, train_every):
    """Learning's cost per agent step, in env steps (s above)."""
    return (GRADIENT_MS + GRADIENT_MS_PER_SAMPLE * batch_size) / train_every / ENV_STEP_MS


def available_cores():
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def worker_split(num_envs, cores, share):
    """(worker processes, envs stepped in this process) for num_envs envs on `cores` cores,
    when learning costs `share` env steps per agent step."""
    workers = min(cores - 1, num_envs)
    if workers < 1:
        return 0, num_envs  # one core: a second process would only take turns with this one
    local = round(num_envs * max(0.0, 1.0 - share * workers) / (workers + 1))
    return workers, min(local, num_envs - workers)


def machine_split(cfg):
    """worker_split for cfg's envs and learner on the cores this process may use."""
    return worker_split(cfg.num_envs, available_cores(),
                        learner_share(cfg.batch_size, cfg.train_every))


def vector_text(cfg):
    """One line on how the cfg.num_envs envs are stepped on this machine."""
    if cfg.vector != "workers":
        return f"envs: {cfg.num_envs} in Gymnasium's {cfg.vector} vector env"
    cores = available_cores()
    workers, local = machine_split(cfg)
    where = (f"{workers} worker process(es) step {cfg.num_envs - local}, this process steps "
             f"{local}" if workers else "this process steps them all (no worker processes)")
    return (f"envs: {cfg.num_envs} at once on {cores} core(s): {where} and learns (the split "
            "changes the speed, never the result)")


def make_vector_env(cfg):
    """The Gymnasium vector env of cfg.num_envs training envs that run_dqn steps: games reset
    within the step that ends them (the final observation is in info["final_obs"]). One env runs
    in this process; more run as cfg.vector says."""
    make_one = functools.partial(make_env, cfg.env_id, cfg.noop_max, cfg.sticky_actions, None,
                                 cfg.obs)
    if cfg.num_envs > 1 and cfg.vector == "workers":
        return EnvWorkers(make_one, cfg.num_envs, *machine_split(cfg))  # (words errors itself)
    vector_class = (gym.vector.AsyncVectorEnv if cfg.num_envs > 1 and cfg.vector == "async"
                    else gym.vector.SyncVectorEnv)
    return vector_class([lambda: EnvErrors(make_one())] * cfg.num_envs,
                        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def env_error_text(error, command="step"):
    """One line for an exception an env raised in reset() or step()."""
    return f"an env raised {type(error).__name__} in {command}(): {first_line(error)}"


def env_worker(make_one, first, count, shared, layout, pipe, other_end):
    """A worker process: owns envs first … first+count−1 and steps them when asked.

    Commands arrive on `pipe` as (name, argument); results go into the shared arrays (see
    shared_views) and a short ("ok", None) or ("error", message) goes back.
    """
    # Ctrl-C, SIGTERM to the process group, a closed terminal: the main process handles them
    # and closes the workers when it has saved (a worker also ends when the main process dies:
    # its pipe then reports EOF)
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if other_end is not None:
        other_end.close()  # (forked: so the worker sees EOF when the main process dies)
    view = shared_views(shared, layout)
    envs = [make_one() for _ in range(count)]
    while True:
        try:
            command, argument = pipe.recv()
        except (EOFError, OSError):
            break
        if command == "close":
            break
        try:
            step_envs(envs, first, view, command, argument)
            pipe.send(("ok", None))
        except Exception as error:
            pipe.send(("error", env_error_text(error, command)))
    for env in envs:
        env.close()


def step_envs(envs, first, view, command, argument=None):
    """Reset (command "reset", env i seeded argument + i) or step envs first, first+1, …
    with view["actions"], writing what they return into the shared arrays `view`."""
    for j, env in enumerate(envs):
        i = first + j
        if command == "reset":
            view["obs"][i], _ = env.reset(seed=None if argument is None else argument + i)
            continue
        obs, reward, terminated, truncated, info = env.step(view["actions"][i])
        view["rewards"][i], view["terminated"][i] = reward, terminated
        view["truncated"][i], view["life_lost"][i] = truncated, info.get("life_lost", False)
        view["ended"][i] = terminated or truncated
        if terminated or truncated:  # same-step autoreset, keeping the last observation
            view["final_obs"][i] = obs
            obs, _ = env.reset()
        view["obs"][i] = obs


def shared_layout(num_envs, obs_shape, obs_dtype):
    """[(name, dtype, shape, byte offset)] of the arrays EnvWorkers share, and the total bytes."""
    fields = [("obs", obs_dtype, (num_envs, *obs_shape)),
              ("final_obs", obs_dtype, (num_envs, *obs_shape)), ("actions", np.int64, (num_envs,)),
              ("rewards", np.float64, (num_envs,))] + [
             (name, np.bool_, (num_envs,)) for name in ("terminated", "truncated", "life_lost",
                                                         "ended")]
    layout, offset = [], 0
    for name, dtype, shape in fields:
        layout.append((name, np.dtype(dtype).str, shape, offset))
        offset += -(-np.dtype(dtype).itemsize * math.prod(shape) // 8) * 8  # 8-byte aligned
    return layout, offset


def shared_views(shared, layout):
    """Numpy arrays over the shared bytes, by name."""
    return {name: np.frombuffer(shared, dtype=dtype, count=math.prod(shape),
                                offset=offset).reshape(shape)
            for name, dtype, shape, offset in layout}


class EnvWorkers:
    """N copies of an env: W worker processes step the last N − `local` of them (an equal share
    each), this process the first `local` ones inside step_wait() — the lean alternative to
    Gymnasium's AsyncVectorEnv for envs whose step is cheap.

    AsyncVectorEnv gives every env its own process and pickles a step's results (with the info
    dicts, merged per key) through a pipe; for a 0.4 ms Atari RAM step that costs about as much
    as the emulation. Here the observations, rewards and flags live in shared memory and each
    worker answers a step of all its envs with one short message. Same API subset as the
    vector envs run_dqn uses: reset(seed) (env i gets seed + i), step_async(actions),
    step_wait(), step(actions), close(); games reset within the step that ends them, with the
    last observation in info["final_obs"][i] where info["_final_obs"][i].
    """

    def __init__(self, make_one, num_envs, num_workers, local=0):
        self.local = [make_one() for _ in range(local)]
        probe = self.local[0] if local else make_one()
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        if not local:
            probe.close()
        self.num_envs = num_envs
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        space = self.single_observation_space
        self.layout, size = shared_layout(num_envs, space.shape, space.dtype)
        context = multiprocessing.get_context()
        self.shared = context.RawArray("b", size)
        self.view = shared_views(self.shared, self.layout)
        self.pipes, self.processes = [], []
        forked = context.get_start_method() == "fork"
        bounds = np.linspace(local, num_envs, min(num_workers, num_envs - local) + 1).astype(int)
        for first, end in itertools.pairwise(bounds):
            mine, theirs = context.Pipe()
            process = context.Process(target=env_worker, daemon=True, args=(
                make_one, int(first), int(end - first), self.shared, self.layout, theirs,
                mine if forked else None))
            process.start()
            theirs.close()
            self.pipes.append(mine)
            self.processes.append(process)

    def _send(self, command, argument=None):
        for pipe, process in zip(self.pipes, self.processes):
            try:
                pipe.send((command, argument))
            except OSError:  # (BrokenPipeError) the worker is gone
                process.join(timeout=1)
                raise TrainingError(f"an env worker process died (exit code "
                                    f"{process.exitcode})") from None

    def _collect(self, command, argument=None):
        problems = []
        try:
            step_envs(self.local, 0, self.view, command, argument)
        except Exception as error:
            problems.append(env_error_text(error, command))
        for pipe, process in zip(self.pipes, self.processes):
            try:
                status, message = pipe.recv()
            except (EOFError, OSError):
                process.join(timeout=1)
                status, message = "error", (f"an env worker process died (exit code "
                                            f"{process.exitcode})")
            if status != "ok":
                problems.append(message)
        if problems:
            raise TrainingError(problems[0])

    def reset(self, seed=None):
        self._send("reset", seed)
        self._collect("reset", seed)
        return self.view["obs"].copy(), {}

    def step_async(self, actions):
        self.view["actions"][:] = actions
        self._send("step")

    def step_wait(self):
        self._collect("step")
        v = self.view
        info = {"final_obs": v["final_obs"].copy(), "_final_obs": v["ended"].copy(),
                "life_lost": v["life_lost"].copy()}
        return (v["obs"].copy(), v["rewards"].copy(), v["terminated"].copy(),
                v["truncated"].copy(), info)

    def step(self, actions):
        self.step_async(actions)
        return self.step_wait()

    def close(self):
        for pipe in self.pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(("close", None))
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
        self.pipes, self.processes = [], []
        for env in self.local:
            env.close()
        self.local = []


def check_theta_shape(weights, obs_shape, n_actions):
    """Raise ValueError unless weights["theta"] has the shape these observations and actions
    need: (n_features,) for 2 actions, else (n_features, n_actions), n_features = obs size + 1."""
    n_features = math.prod(obs_shape) + 1
    expected = (n_features,) if n_actions == 2 else (n_features, n_actions)
    theta = weights.get("theta")
    if theta is None or tuple(theta.shape) != expected:
        raise ValueError(f"the checkpoint's θ does not have the shape {expected} that its "
                         "observations and actions need")


def make_pg_policy(weights, cfg, seed):
    """(policy, scaler): a LogisticPolicy for a θ of shape (n_features,) (2 actions), else a
    SoftmaxPolicy, with a LinearBaseline if cfg.baseline; a FeatureScaler if cfg.normalize_obs,
    else None. `weights`: {"theta": θ[, "baseline_w": w][, "obs_mean", "obs_var", "obs_count"]},
    numpy arrays or CPU tensors (as a checkpoint stores them)."""
    theta = np.asarray(weights["theta"], dtype=np.float64)
    scaler = None
    if cfg.normalize_obs:
        scaler = FeatureScaler(theta.shape[0] - 1)  # every feature but the bias
        if "obs_mean" in weights:
            scaler.load_state_dict(weights)
    baseline = None
    if cfg.baseline:
        baseline = LinearBaseline(theta.shape[0], cfg.baseline_lr)
        if "baseline_w" in weights:
            baseline.w = np.asarray(weights["baseline_w"], dtype=np.float64)
    policy_class = LogisticPolicy if theta.ndim == 1 else SoftmaxPolicy
    policy = policy_class(theta, cfg.alpha, cfg.gamma, seed, cfg.normalize_returns, baseline,
                          cfg.entropy_coef)
    return policy, scaler


def train_pg(cfg, out_dir, resume_from=None, command=None):
    """Train a LogisticPolicy (2 actions) or a SoftmaxPolicy (more) with REINFORCE, continuing
    `resume_from` if given; returns the recorder."""
    env = make_env(cfg.env_id)
    games_done, seed = resume_point(cfg, resume_from)
    n_features = int(np.prod(env.observation_space.shape)) + 1  # + 1 for the bias feature
    n_actions = int(env.action_space.n)
    theta_shape = (n_features,) if n_actions == 2 else (n_features, n_actions)
    # θ ~ N(0, init_std²). On CartPole's 4 features small random weights break the symmetry
    # between the two actions; on Breakout's 128 bytes the same weights would add up to a policy
    # that already favours some action, so there θ = 0: the uniform policy.
    if resume_from:
        weights = resume_from["weights"]
        check_theta_shape(weights, env.observation_space.shape, n_actions)
    else:
        weights = {"theta": np.random.default_rng(seed).normal(0, cfg.init_std, theta_shape)}
    policy, scaler = make_pg_policy(weights, cfg, seed)

    def snapshot():
        state = policy.state_dict()
        if scaler is not None:
            state["weights"].update(scaler.state_dict())
        return state

    recorder = RunRecorder(out_dir, "pg", cfg, env, snapshot, resume_from, command=command)
    if not resume_from:
        recorder.save_checkpoint()  # so the folder always holds a checkpoint to resume
    announce(f"REINFORCE ({type(policy).__name__}) on {cfg.env_id}: {n_features} features, "
             f"{n_actions} actions", cfg, out_dir, resume_from)
    env.action_space.seed(seed)

    def metrics():
        steps = [0, *recorder.game_steps[-2:]]
        return {"step_size": policy.alpha, "theta_norm": float(np.linalg.norm(policy.theta)),
                "episode_length": steps[-1] - steps[-2] if recorder.games else math.nan}

    def on_episode(episode, score, steps):
        learned = [policy.theta] + ([policy.baseline.w] if policy.baseline else [])
        if not all(np.isfinite(array).all() for array in learned):
            raise FloatingPointError(f"θ stopped being finite in episode {episode} (try a "
                                     "lower --alpha or --baseline-lr)")
        recorder.end_game(score, recorder.env_step + steps)
        recorder.maybe_log(recorder.env_step, episode, cfg.episodes, "episode", metrics=metrics)
        return recorder.should_stop()

    last_episode = games_done
    try:
        last_episode = run_reinforce(EnvErrors(env), policy, cfg.episodes, scaler,
                                     cfg.clip_rewards, cfg.life_loss_reward,
                                     cfg.life_loss_ends_return, games_done + 1, seed, on_episode)
    except StopTraining as stop:
        recorder.stopped_by(stop)
    except FloatingPointError as error:
        raise recorder.diverged(error) from None
    finally:
        recorder.maybe_log(recorder.env_step, max(last_episode, recorder.games), cfg.episodes,
                           "episode", force=True, metrics=metrics)
        recorder.finish(recorder.env_step)
        env.close()
    return recorder


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 15. Checkpoints, evaluation, plots, GIFs and speed benchmarks
# ════════════════════════════════════════════════════════════════════════════════════════════════
# A checkpoint is rebuilt from what model.pt stores (config, env id, shapes), on the CPU whatever
# device trained it. Checkpoints found online are untrusted: torch.load(weights_only=True) only
# unpickles tensors and plain containers, and every field is checked before it is used.


def moving_average(values, window=100):
    """Mean of the last `window` values at each index (shorter at the start), shape (len,)."""
    values = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (sums[idx] - sums[start]) / (idx - start)


@contextlib.contextmanager
def png_figure(path, figsize, ncols=1, mosaic=None):
    """`with png_figure(path, (w, h)) as ax:` draw on `ax` (with ncols=2, a pair of axes side
    by side; with a `mosaic`, matplotlib's subplot_mosaic layout and a dict of axes by name);
    the figure is saved as a PNG at `path` when the block ends. Drawn off-screen
    (matplotlib's Agg backend: no window, works on servers) and always closed, so long runs do
    not pile up figures."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if mosaic is not None:
        fig, ax = plt.subplot_mosaic(mosaic, figsize=figsize, empty_sentinel=".")
    else:
        fig, ax = plt.subplots(1, ncols, figsize=figsize)
    try:
        yield ax
        fig.tight_layout()
        fig.savefig(path, dpi=100, format="png")
    finally:
        plt.close(fig)


def agent_steps_axis(ax, frames_per_step=None):
    """Label `ax`'s x axis in agent steps and, with `frames_per_step` (Atari: 4), add frames on
    a second axis at the top."""
    ax.set_xlabel("agent steps")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    if frames_per_step:
        frames = ax.secondary_xaxis("top", functions=(lambda s: s * frames_per_step,
                                                      lambda f: f / frames_per_step))
        frames.set_xlabel(f"frames ({frames_per_step} per agent step)")
        frames.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))


def plot_curves(runs, path, title="", threshold=None, frames_per_step=None, mean=None):
    """Plot, for each (steps, scores, label) in `runs`, the score of each game at the agent step
    it ended and the mean of the last 100 games there, against agent steps (as CleanRL and SB3
    plot; runs of other lengths or --num-envs line up by steps), as a PNG file at `path`. With
    `frames_per_step` (Atari: 4), frames are on a second axis at the top, as papers count.
    `mean`: (steps, mean, low, high) of several seeds, drawn in black with its band."""
    with png_figure(path, (8, 4.5)) as ax:
        for steps, scores, label in runs:
            if len(runs) == 1:
                ax.plot(steps, scores, color="tab:blue", alpha=0.25, lw=0.8,
                        label="score per game")
            ax.plot(steps, moving_average(scores), lw=1 if mean else 2,
                    label=f"{label} 100-game mean".strip())
        if mean is not None:
            grid, middle, low, high = mean
            ax.plot(grid, middle, color="black", lw=2.5, label=f"mean of {len(runs)} seeds")
            ax.fill_between(grid, low, high, color="black", alpha=0.15,
                            label="95% bootstrap interval")
        if threshold is not None:
            ax.axhline(threshold, color="tab:green", ls="--", label=f"solved ({threshold:g})")
        ax.set(ylabel="score", title=title)
        agent_steps_axis(ax, frames_per_step)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if mean else "upper left")


def load_checkpoint(path):
    """Read model.pt (or a run folder holding one) safely; raise ValueError if it is not ours."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise ValueError(f"{path} is not a readable checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or "format_version" not in checkpoint:
        raise ValueError(f"{path} is not a breakout_rl checkpoint")
    if checkpoint["format_version"] != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} has checkpoint format {checkpoint['format_version']}; this "
                         f"breakout_rl.py reads format {CHECKPOINT_FORMAT}")
    checkpoint["config"] = config_from_checkpoint(checkpoint, path)
    check_checkpoint_fields(checkpoint, path)
    # Checkpoints written before the networks scaled uint8 input themselves store the scale.
    for state in (checkpoint["weights"], checkpoint.get("train_state", {}).get("target", {})):
        state.pop("obs_scale", None)
    return checkpoint


def config_from_checkpoint(checkpoint, path):
    """Rebuild the config dataclass from the checkpoint's plain data, checking every field."""
    config_class = ALGOS.get(checkpoint.get("algo"))
    stored = checkpoint.get("config")
    if config_class is None or not isinstance(stored, dict):
        raise ValueError(f"{path} is not a breakout_rl checkpoint (no algo or config)")
    if config_class is DQNConfig and "n_step" not in stored:
        stored = {**stored, "n_step": 1}  # written before n-step returns: trained with one step
    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    for name, value in stored.items():
        if name not in defaults or type(value) is not type(defaults[name]):
            raise ValueError(f"{path} has an invalid config field {name!r}")
    cfg = config_class(**stored)
    try:
        validate_config(cfg)
    except ValueError as error:
        raise ValueError(f"{path} has an invalid config: {error}") from None
    return cfg


def check_checkpoint_fields(checkpoint, path):
    """Raise ValueError unless env id, shapes, weights and counters have the right types."""
    def is_count(value):
        return isinstance(value, int) and value >= 0
    progress = checkpoint.get("progress", {"env_step": 0, "games": 0})
    checks = {
        "env_id": isinstance(checkpoint.get("env_id"), str),
        "obs_shape": isinstance(checkpoint.get("obs_shape"), list)
        and all(is_count(n) for n in checkpoint["obs_shape"]),
        "n_actions": is_count(checkpoint.get("n_actions")),
        "weights": isinstance(checkpoint.get("weights"), dict)
        and all(isinstance(v, torch.Tensor) for v in checkpoint["weights"].values()),
        "train_state": isinstance(checkpoint.get("train_state", {}), dict)
        and isinstance(checkpoint.get("train_state", {}).get("target", {}), dict)
        and all(isinstance(v, torch.Tensor)
                for v in checkpoint.get("train_state", {}).get("target", {}).values())
        and isinstance(checkpoint.get("train_state", {}).get("optimizer", {}), dict)
        and all(is_count(checkpoint.get("train_state", {}).get(k, 0))
                for k in ("t_step", "learn_steps")),
        "progress": isinstance(progress, dict) and is_count(progress.get("env_step"))
        and is_count(progress.get("games")),
    }
    for name, ok in checks.items():
        if not ok:
            raise ValueError(f"{path} has a missing or invalid {name!r}")


def agent_from_checkpoint(checkpoint, seed=0, device="cpu"):
    """A DQN Agent built as the checkpoint's run built it, with its online weights loaded."""
    agent = make_agent(checkpoint["config"], tuple(checkpoint["obs_shape"]),
                       checkpoint["n_actions"], seed, device)
    try:
        agent.qnetwork_local.load_state_dict(checkpoint["weights"])
    except RuntimeError:  # missing keys or other shapes
        raise ValueError(f"the weights in the {checkpoint['env_id']} checkpoint do not fit the "
                         "network its config describes") from None
    return agent


def policy_from_checkpoint(checkpoint, eps=0.0, seed=0):
    """Rebuild a function obs → action from a checkpoint (ε-greedy DQN, or a sampled PG)."""
    cfg = checkpoint["config"]
    if checkpoint["algo"] == "dqn":
        agent = agent_from_checkpoint(checkpoint, seed)
        return lambda obs: agent.act(obs, eps)
    check_theta_shape(checkpoint["weights"], checkpoint["obs_shape"], checkpoint["n_actions"])
    policy, scaler = make_pg_policy(checkpoint["weights"], cfg, seed)
    return lambda obs: policy.act(pg_features(obs, scaler))[0]


class GifRecorder:
    """Collects rendered frames of one game, keeping at most `max_frames` evenly spaced ones.

    When the list overflows, every other frame is dropped and the sampling stride doubles, so a
    long Breakout game still fits in a few MB. Frames are RGB arrays (height, width, 3) uint8.
    With the Q-values of each frame's state (add(frame, q_values, action, value)), save() draws
    them in a panel beside the frame (q_panel, section 16); `action_names` label the bars.
    """

    def __init__(self, max_frames=400, steps_per_second=30, action_names=None):
        self.max_frames, self.steps_per_second = max_frames, steps_per_second
        self.action_names = action_names
        self.frames, self.panels, self.stride, self.count = [], [], 1, 0

    def add(self, frame, q_values=None, action=None, value=None):
        if self.count % self.stride == 0:
            self.frames.append(frame)
            self.panels.append(None if q_values is None else (q_values, action, value))
            if len(self.frames) > self.max_frames:
                self.frames, self.panels = self.frames[::2], self.panels[::2]
                self.stride *= 2
        self.count += 1

    def shown_frames(self, trace_seconds=3.0):
        """The frames as the GIF shows them: with their Q-value panels when every frame has one
        (one axis for the whole game; the trace covers the last `trace_seconds` of play)."""
        if not self.frames or any(panel is None for panel in self.panels):
            return self.frames
        all_q = np.concatenate([np.ravel(q) for q, _, _ in self.panels])
        low, high = float(all_q.min()), float(all_q.max())
        margin = max(high - low, 1e-6) * 0.05
        low, high = low - margin, high + margin
        names = self.action_names or [str(a) for a in range(len(self.panels[0][0]))]
        window = max(2, round(trace_seconds * self.steps_per_second / 2 / self.stride))
        max_q = [float(np.max(q)) for q, _, _ in self.panels]
        return [q_panel(frame, q, action, names, low, high, value, max_q[max(0, k - window):k + 1])
                for k, (frame, (q, action, value)) in enumerate(zip(self.frames, self.panels))]

    def save(self, path):
        """Write an animated GIF with Pillow (a dependency of matplotlib)."""
        from PIL import Image
        images = [Image.fromarray(frame) for frame in self.shown_frames()]
        # An Atari agent step is 4 frames at 60 Hz (15 steps/s); we play back at 2× that.
        duration_ms = max(20, round(1000 * self.stride / self.steps_per_second))
        replace_file(path, lambda tmp: images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms,
            loop=0))


def checkpoint_to_play(checkpoint_path, games, eps):
    """The checkpoint --eval and --explain play with, after checking their --episodes and
    --eval-eps; a one-line note where it was made with other versions."""
    if not (isinstance(games, int) and games >= 1):
        raise ValueError(f"--episodes must be at least 1, got {games}")
    if not 0 <= eps <= 1:
        raise ValueError(f"--eval-eps must be in [0, 1], got {eps}")
    checkpoint = load_checkpoint(checkpoint_path)
    note_other_versions(checkpoint, checkpoint_path)
    return checkpoint


def evaluate(checkpoint_path, games=10, eps=DEFAULT_EVAL_EPS, seed=1000, gif_path=None,
             env_id=None):
    """Play `games` full games with a checkpoint on the CPU; returns the list of raw scores.

    DQN plays ε-greedily with a small ε (0.01, the usual Atari evaluation protocol, so a policy
    cannot loop forever); FIRE is pressed by the AtariLives wrapper. With `gif_path`, the first
    game is also written as an animated GIF, a DQN's Q-values beside each frame.
    """
    checkpoint = checkpoint_to_play(checkpoint_path, games, eps)
    cfg, env_id = checkpoint["config"], env_id or checkpoint["env_id"]
    env = make_env(env_id, getattr(cfg, "noop_max", 30), getattr(cfg, "sticky_actions", 0.0),
                   render_mode="rgb_array" if gif_path else None, obs=getattr(cfg, "obs", "ram"))
    shape, n_actions = list(env.observation_space.shape), int(env.action_space.n)
    if shape != checkpoint["obs_shape"] or n_actions != checkpoint["n_actions"]:
        env.close()
        raise ValueError(f"the checkpoint expects observations of shape {checkpoint['obs_shape']}"
                         f" and {checkpoint['n_actions']} actions, but {env_id} gives {shape} "
                         f"and {n_actions}")
    gif = watch = None
    if checkpoint["algo"] == "dqn":
        agent = agent_from_checkpoint(checkpoint, seed)
        policy = functools.partial(agent.act, eps=eps)
        if gif_path:  # the Q-values (and V) of each state the GIF shows
            watch = functools.partial(q_values_and_value, agent.qnetwork_local)
    else:
        policy = policy_from_checkpoint(checkpoint, eps, seed)
    if gif_path:
        names = (env.unwrapped.get_action_meanings()
                 if hasattr(env.unwrapped, "get_action_meanings") else None)
        gif = GifRecorder(action_names=names)
    try:
        scores, _, _ = play_games(env, policy, max_games=games, seed=seed, gif=gif, watch=watch)
    except gym.error.DependencyNotInstalled as error:  # CartPole & co. draw with pygame
        raise ValueError(f"--gif: {env_id} needs a package to draw its frames: "
                         f"{first_line(error)}") from None
    finally:
        env.close()
    if gif is not None:
        gif.save(gif_path)
    return scores


# Config fields that say how a run is kept and shown, not what it learns.
RUN_OPTIONS = {"out", "log_every", "device", "threads", "max_minutes", "save_every", "gif_at_end",
               "tensorboard"}


def metric_curve(run_dir, metric):
    """(steps, values) of one column of a run's metrics.csv; ValueError naming the columns
    there if it lacks it."""
    columns, rows = read_metrics(run_dir / "metrics.csv")
    if metric not in columns:
        there = (f"its columns are {', '.join(columns)}" if columns else
                 "it has no metrics.csv (runs before metrics.csv existed)")
        raise ValueError(f"--metric {metric}: {run_dir} has no such metric; {there}")
    return [row["step"] for row in rows], [row[metric] for row in rows]


def plot_metric(runs, path, metric, frames_per_step=None):
    """One metric of metrics.csv against agent steps, one line per (steps, values, label)."""
    with png_figure(path, (8, 4.5)) as ax:
        for steps, values, label in runs:
            ax.plot(steps, values, lw=1.5, label=label)
        ax.set(ylabel=metric, title=f"{metric} (metrics.csv)")
        agent_steps_axis(ax, frames_per_step)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")


class Runs(NamedTuple):
    """Run folders read for --plot: `curves`, a (steps, values, label) per run (its games'
    steps and raw scores, or one column of metrics.csv), labelled by the config fields that
    differ; `lengths`, the agent steps each run reached; `seeds_only`, True when the runs differ
    only in seed (and length): one setting's seeds, which may be averaged; `frames`, frames per
    agent step where all are Atari runs."""
    curves: list
    lengths: list
    seeds_only: bool
    frames: object  # an int, or None


def labelled_runs(run_dirs, metric=None):
    """Read run folders into Runs."""
    runs = []
    for run_dir in map(Path, run_dirs):
        if not (run_dir / "history.csv").is_file():
            raise ValueError(f"{run_dir} holds no history.csv")
        rows = read_history(run_dir / "history.csv")
        checkpoint = load_checkpoint(run_dir)
        cfg = {"algo": checkpoint["algo"], **dataclasses.asdict(checkpoint["config"])}
        curve = (metric_curve(run_dir, metric) if metric else
                 ([int(r["env_step"]) for r in rows], [float(r["score"]) for r in rows]))
        runs.append((run_dir, curve, cfg, checkpoint["progress"]["env_step"]))
    # the settings every run has (a DQN and a PG run share few), where they differ
    keys = sorted(set.intersection(*(set(cfg) for _, _, cfg, _ in runs)) - RUN_OPTIONS)
    differing = [k for k in keys if len({str(cfg[k]) for _, _, cfg, _ in runs}) > 1]
    labelled = [(*curve, " ".join(f"{k}={cfg[k]}" for k in differing) or run_dir.name)
                for run_dir, curve, cfg, _ in runs]
    labels = [label for *_, label in labelled]
    if len(set(labels)) < len(labels):  # the same settings twice: the folders tell them apart
        labelled = [(*curve, f"{run[0].name}: {label}") for run, (*curve, label)
                    in zip(runs, labelled)]
    seeds_only = "seed" in differing and set(differing) <= {"seed", "total_steps", "episodes"}
    frames = ATARI_FRAMESKIP if all(is_atari(run[2]["env_id"]) for run in runs) else None
    return Runs(labelled, [run[3] for run in runs], seeds_only, frames)


def compare_runs(run_dirs, to_path, metric=None):
    """Overlay the 100-game means of several runs (or, with `metric`, one column of their
    metrics.csv) against agent steps; labels are the config fields that differ. Seeds of one
    setting get their mean too, with a 95% bootstrap band. Returns the labels."""
    return draw_runs(labelled_runs(run_dirs, metric), to_path, metric)


def draw_runs(runs, to_path, metric=None):
    """compare_runs for run folders already read into Runs; returns their labels."""
    if metric:
        replace_file(to_path, lambda tmp: plot_metric(runs.curves, tmp, metric, runs.frames))
    else:
        mean = seeds_mean_curve(runs) if runs.seeds_only and len(runs.curves) > 1 else None
        replace_file(to_path, lambda tmp: plot_curves(runs.curves, tmp, "100-game mean score",
                                                      None, runs.frames, mean))
    return [label for *_, label in runs.curves]


# Comparing seeds the way papers do (Agarwal et al. 2021): the 100-game mean of each run at the
# same agent steps, the mean over the runs, and a 95% bootstrap interval for that mean (the
# games benchmark's stratified_bootstrap, section 17, with the seeds as one "game").
def mean_at_steps(steps, scores, at, length):
    """The 100-game mean (as drawn) of one run that reached agent step `length`, at each agent
    step in `at`: the mean of the last 100 games finished by then; NaN before its first game
    or after `length`."""
    steps, at = np.asarray(steps), np.asarray(at, dtype=float)
    means = np.append(moving_average(scores), np.nan)  # index -1 (no game yet) reads NaN
    values = means[np.searchsorted(steps, at, side="right") - 1]
    return np.where(at <= length, values, np.nan)


def mean_over_runs(values):
    """(mean, low, high) over runs of one number each, the 95% bootstrap interval; NaN
    where a run has none."""
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).all():
        return math.nan, math.nan, math.nan
    mean, low, high = stratified_bootstrap([values], AGGREGATES["mean"])
    return float(mean), float(low), float(high)


def seeds_mean_curve(runs, points=200):
    """(steps, mean, low, high) arrays: the mean over Runs of their 100-game means on a grid
    of agent steps up to the shortest run's length, with its 95% band (the same bootstrap
    draws at every step: a band of whole curves)."""
    grid = np.linspace(0, min(runs.lengths), points + 1)[1:]
    at_grid = [mean_at_steps(steps, scores, grid, length)
               for (steps, scores, _), length in zip(runs.curves, runs.lengths)]
    band = np.array([mean_over_runs(column) for column in zip(*at_grid)])
    return grid, band[:, 0], band[:, 1], band[:, 2]


def milestones(last_step, most=5):
    """Round agent steps to compare runs at: multiples of 1, 2 or 5 × 10^k, at most `most` of
    them up to `last_step` (3M → 1M, 2M, 3M; 500k → 100k … 500k)."""
    for exponent in range(max(int(math.log10(max(last_step, 1))), 0), -1, -1):
        for unit in (10 ** exponent, 2 * 10 ** exponent, 5 * 10 ** exponent):
            count = last_step // unit
            if 1 <= count <= most:
                return [unit * i for i in range(1, count + 1)]
    return [last_step] if last_step > 0 else []


def first_step_reaching(steps, scores, level):
    """The agent step at which the 100-game mean first reached `level`, or None."""
    reached = np.flatnonzero(moving_average(scores) >= level)
    return int(steps[reached[0]]) if reached.size else None


def runs_table(runs, reach=()):
    """A markdown table of Runs: per run, the agent step its 100-game mean first reached each
    score in `reach` and the 100-game mean at round agent steps; for seeds of one setting a
    last row with the mean over them and its 95% bootstrap interval."""
    at = milestones(min(runs.lengths))
    header = ([f"steps to {level:g}" for level in reach] +
              [f"at {short_steps(step)}" for step in at])
    lines = ["| run | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    columns = []
    for (steps, scores, label), length in zip(runs.curves, runs.lengths):
        reached = [first_step_reaching(steps, scores, level) for level in reach]
        means = mean_at_steps(steps, scores, at, length) if steps else [math.nan] * len(at)
        columns.append(reached + list(means))
        lines.append(f"| {label} | " + " | ".join(
            ["—" if r is None else short_steps(r) for r in reached] +
            [f"{m:.1f}" if np.isfinite(m) else "—" for m in means]) + " |")
    if runs.seeds_only and len(runs.curves) > 1:
        cells = []
        for i, column in enumerate(zip(*columns)):
            if i < len(reach) and None in column:
                cells.append(f"{sum(c is not None for c in column)} of {len(column)} reached")
                continue
            mean, low, high = mean_over_runs(column)
            show = short_steps if i < len(reach) else (lambda v: f"{v:.1f}")
            cells.append(f"{show(mean)} [{show(low)}, {show(high)}]" if np.isfinite(mean)
                         else "—")
        lines.append(f"| mean of {len(runs.curves)} seeds [95% interval] | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def short_steps(step):
    """1_000_000 → '1M', 870_656 → '0.87M', 150_000 → '150k', 900 → '900'."""
    if step >= 5e5:
        return f"{step / 1e6:.2f}".rstrip("0").rstrip(".") + "M"
    return f"{step / 1e3:.0f}k" if step >= 1e3 else f"{step:.0f}"


def play_games(env, choose_action, max_steps=math.inf, max_games=math.inf, seconds=math.inf,
               seed=0, gif=None, watch=None):
    """Play `choose_action(obs)` from env.reset(seed=seed) until `max_steps` steps, `max_games`
    games or `seconds` of wall time; with a GifRecorder `gif`, the first game's frames go into
    it, each with the chosen action and what `watch(obs[None])` returns, (Q-values (1, A),
    V (1,) or None), if given. Returns (raw scores of the games that finished, steps taken,
    seconds taken)."""
    obs, _ = env.reset(seed=seed)
    scores, score, steps, start = [], 0.0, 0, time.time()
    while steps < max_steps and time.time() - start < seconds:
        action = choose_action(obs)
        if gif is not None and not scores:
            if watch is None:
                gif.add(env.render())
            else:
                q_values, value = watch(obs[None])
                gif.add(env.render(), q_values[0], action, None if value is None else value[0])
        obs, reward, terminated, truncated, _ = env.step(action)
        steps, score = steps + 1, score + reward
        if terminated or truncated:
            scores.append(score)
            score = 0.0
            if len(scores) >= max_games:
                break
            obs, _ = env.reset()
    return scores, steps, time.time() - start


def benchmark_env(env_id="ALE/Breakout-v5", steps=20_000, seed=0):
    """Random actions through the same env stack as training: (steps per second, game scores)."""
    env = make_env(env_id)
    env.action_space.seed(seed)
    scores, steps, seconds = play_games(env, lambda obs: env.action_space.sample(), steps,
                                        seed=seed)
    env.close()
    return steps / seconds, scores


def constant_action_scores(env_id="ALE/Breakout-v5", games=3, max_steps=30_000, seed=0):
    """{action: mean score of `games` games that press only that action}. A learner that beats
    random play may only have found the best of these (in Breakout, holding LEFT scores 11
    every game, with FIRE pressed by AtariLives): the bar that shows it reacts to the state."""
    env = make_env(env_id)
    means = {}
    for action in range(env.action_space.n):
        scores, _, _ = play_games(env, lambda obs, a=action: a, max_steps, games, seed=seed)
        means[action] = float(np.mean(scores)) if scores else float("nan")
    env.close()
    return means


def raw_env_rate(cfg, num_envs, seconds=10.0, seed=0):
    """Agent steps per second of random play through `num_envs` envs (1: the plain env, as
    training steps it; more: the vector env cfg.vector makes), measured for `seconds`."""
    if num_envs == 1:
        env = make_env(cfg.env_id, cfg.noop_max, cfg.sticky_actions, obs=cfg.obs)
        env.action_space.seed(seed)
        _, steps, seconds = play_games(env, lambda obs: env.action_space.sample(),
                                       seconds=seconds, seed=seed)
        env.close()
        return steps / seconds
    with contextlib.closing(make_vector_env(dataclasses.replace(cfg, num_envs=num_envs))) as envs:
        rng = np.random.default_rng(seed)
        envs.reset(seed=seed)
        steps, start = 0, time.time()
        while time.time() - start < seconds:
            envs.step(rng.integers(envs.single_action_space.n, size=num_envs))
            steps += num_envs
        return steps / (time.time() - start)


def benchmark_training(cfg, seconds=30.0):
    """(training agent steps/s while learning, raw steps/s of the same N envs, raw steps/s of
    one env): the agent first fills its buffer (not timed), then trains for `seconds`; each raw
    rate is measured for a third of that (at most 10 s)."""
    env = make_env(cfg.env_id, cfg.noop_max, cfg.sticky_actions, obs=cfg.obs)
    agent = make_agent(cfg, env.observation_space.shape, env.action_space.n, cfg.seed)
    clock = {}

    def on_step(step, game_score):
        if "start" not in clock and agent.warm:
            clock["start"], clock["step"] = time.time(), step
        return "start" in clock and time.time() - clock["start"] >= seconds
    env.close()
    with contextlib.closing(make_vector_env(cfg)) as envs:
        run_dqn(envs, agent, 10**12, cfg.clip_rewards, cfg.seed, on_step)
    training = (agent.t_step - clock["step"]) / (time.time() - clock["start"])
    raw_seconds = min(10.0, seconds / 3)
    return (training, raw_env_rate(cfg, cfg.num_envs, raw_seconds),
            raw_env_rate(cfg, 1, raw_seconds))


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 16. Inside the trained agent: Q-values beside the screen, and the inputs the network reads
# ════════════════════════════════════════════════════════════════════════════════════════════════
# A GIF shows what the agent does, not what it expects. Two pictures show that. The evaluation GIF
# (--eval RUN --gif, and agent.gif after training) draws beside each frame the Q-value of every
# action, the chosen one marked, V(s) when the network has a dueling head, and a trace of max_a Q
# over the last few seconds, which drops in the steps before a life is lost. --explain RUN draws
# which inputs the greedy choice depends on. From RAM, two measures per byte over the states of a
# few evaluation games:
#   * gradient:     mean over states of |∂ max_a Q(s, a) / ∂x_i|, x_i = byte_i / 255 (what the
#                   network would do for a tiny change of the byte: cheap, but a byte that never
#                   changes in play can still score high, and a gradient sees only one point);
#   * perturbation: mean over states of |max_a Q(s̃, a) − max_a Q(s, a)|, s̃ = s with byte i
#                   replaced by its value in another visited state (a change the game really
#                   makes; a byte that never changes scores 0). Closer to "what the network
#                   uses", at one forward pass per byte.
# Neither says *why*: a byte can matter because it encodes the ball, or because it happens to
# move with the ball. Where the meaning of Breakout's (and some other games') bytes is published,
# the bytes are labelled and, beside the map, each labelled byte is plotted against the value.
# From pixels: the gradient map over the screen (as in Greydanus et al. 2018's "saliency", which
# uses a perturbation of blurred patches instead) for a few frames side by side.
#
# RAM addresses (byte index in the 128-byte observation) whose meaning is published: AtariARI,
# Anand et al. 2019, "Unsupervised State Representation Learning in Atari",
# atariari/benchmark/ram_annotations.py
# (https://github.com/mila-iqia/atari-representation-learning); Breakout's lives: ALE's
# src/games/supported/Breakout.cpp reads them at 0xB9 (byte 57).
RAM_ANNOTATIONS = {
    "Breakout": {"ball x": 99, "ball y": 101, "paddle x": 72, "blocks hit": 77, "score": 84,
                 "lives": 57, **{f"bricks {i}": i for i in range(30)}},
    "Pong": {"player y": 51, "player x": 46, "enemy y": 50, "enemy x": 45, "ball x": 49,
             "ball y": 54, "enemy score": 13, "player score": 14},
    "Boxing": {"player x": 32, "player y": 34, "enemy x": 33, "enemy y": 35, "enemy score": 19,
               "clock": 17, "player score": 18},
    "Freeway": {"player y": 14, "score": 103, **{f"car {i}": 108 + i for i in range(10)}},
    "Seaquest": {"player x": 70, "player y": 97, "oxygen": 102, "lives": 59, "divers": 62,
                 "score hi": 57, "score lo": 58},
    "SpaceInvaders": {"player x": 28, "invaders left": 17, "score": 104, "lives": 73,
                      "enemies x": 26, "enemies y": 24, "missiles y": 9},
    "Qbert": {"player x": 43, "player y": 67, "player column": 35, "red enemy column": 69,
              "green enemy column": 105},
    "BattleZone": {"tank x": 48, "tank size": 47, "lives": 58, "score": 29, "crosshairs": 108},
}


def ram_labels(env_id):
    """{byte index: name} of the published RAM annotations of `env_id`'s game ({} if none);
    groups of bytes (Breakout's 30 brick bytes) keep one short name each."""
    names = RAM_ANNOTATIONS.get(game_name(env_id), {})
    return {index: name.rstrip("0123456789").strip() for name, index in names.items()}


def q_values_and_value(network, states):
    """Q-values (N, A) float32 of N observations `states` (N, *obs), and V(s) (N,) when the
    network has a dueling head (else None), in one forward pass without gradients. V is read
    from the value head as the forward pass computes it (a hook), not computed a second way."""
    values = []
    hook = (network.value.register_forward_hook(lambda module, inputs, out: values.append(out))
            if getattr(network, "dueling", False) else None)
    try:
        with torch.no_grad():
            q_values = network(torch.as_tensor(np.asarray(states))).numpy()
    finally:
        if hook is not None:
            hook.remove()
    return q_values, (values[0][:, 0].numpy() if values else None)


# Colours of the Q-value panel (RGB): few and solid, so the GIF's 256-colour palette keeps the
# game's own colours exact.
PANEL_BACKGROUND, PANEL_TEXT, PANEL_BAR = (24, 24, 32), (230, 230, 230), (90, 120, 200)
PANEL_CHOSEN, PANEL_VALUE, PANEL_TRACE = (250, 190, 40), (80, 200, 120), (250, 190, 40)


def panel_font(size=11):
    """Pillow's built-in font (no font file needed); `size` where the Pillow has FreeType."""
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def bar_span(q, low, high, left, width):
    """Pixel columns [start, end) of the bar for value q on an axis from `low` to `high` drawn
    over `width` pixels from `left`: bars start at the 0 line (or at the axis' edge when 0 is
    outside it), so a negative Q points left and a positive one right."""
    def column(value):
        return left + round((value - low) / (high - low) * width)
    zero = column(min(max(0.0, low), high))
    end = column(q)
    return (min(zero, end), max(zero, end))


def q_panel(frame, q_values, action, names, low, high, value=None, trace=()):
    """The frame (H, W, 3) uint8 with a panel of width 182 on its right (the frame itself
    unchanged): one bar per action for Q(s, a) on a common axis [low, high] (the chosen
    `action` in gold, marked >), V(s) when given, and `trace` (recent max_a Q) as a line.
    Returns (H', W + 182, 3) uint8, H' = max(H, what the bars need)."""
    from PIL import Image, ImageDraw
    n_actions, width, row = len(q_values), 182, 14
    rows_needed = 2 + n_actions + (value is not None) + 4
    height = max(frame.shape[0], rows_needed * row)
    image = Image.new("RGB", (frame.shape[1] + width, height), PANEL_BACKGROUND)
    image.paste(Image.fromarray(frame), (0, 0))
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # no antialiasing: solid colours only
    font = panel_font()
    left = frame.shape[1] + 6
    bar_left, bar_width = left + 56, 80  # names | bars | values (room for "-10.25")
    draw.text((left, 2), f"Q(s, a)  [{low:.2f}, {high:.2f}]", fill=PANEL_TEXT, font=font)
    for a, (q, name) in enumerate(zip(q_values, names)):
        y = (a + 1) * row + 4
        colour = PANEL_CHOSEN if a == action else PANEL_BAR
        draw.text((left, y), ("> " if a == action else "  ") + str(name)[:9], fill=colour,
                  font=font)
        start, end = bar_span(float(q), low, high, bar_left, bar_width)
        draw.rectangle((start, y + 2, max(start, end - 1), y + row - 4), fill=colour)
        draw.text((bar_left + bar_width + 2, y), f"{q:5.2f}", fill=colour, font=font)
    y = (n_actions + 1) * row + 8
    if value is not None:
        draw.text((left, y), f"V(s) = {value:.2f}", fill=PANEL_VALUE, font=font)
        y += row
    if len(trace) > 1:
        draw.text((left, y), "max Q, last seconds", fill=PANEL_TEXT, font=font)
        top, bottom = y + row, min(height - 4, y + 4 * row)
        points = [(left + round(k * (width - 14) / (len(trace) - 1)),
                   bottom - round((min(max(q, low), high) - low) / (high - low) * (bottom - top)))
                  for k, q in enumerate(trace)]
        draw.line(points, fill=PANEL_TRACE, width=1)
    return np.asarray(image)


def gradient_saliency(network, states):
    """Mean over N states (N, *obs) of |∂ max_a Q(s, a) / ∂x| for every input x (uint8 inputs
    as x = byte / 255, the scale the network sees), shape obs."""
    x = torch.as_tensor(np.asarray(states))
    x = (x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32))
    x.requires_grad_(True)
    # Σ over the batch: each state's max Q depends only on its own input, so one backward pass
    # gives every state's gradient.
    network(x).max(dim=1).values.sum().backward()
    return x.grad.abs().mean(dim=0).numpy()


def perturbation_saliency(network, states, seed=0):
    """For each input i of flat observations `states` (N, D): mean over the N states of
    |max_a Q(s̃, a) − max_a Q(s, a)|, s̃ = s with input i taken from another of the states (a
    random permutation of that column: values the game really produces). Shape (D,)."""
    states = np.asarray(states)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        base = network(torch.as_tensor(states)).max(dim=1).values
        scores = np.zeros(states.shape[1])
        for i in range(states.shape[1]):
            changed = states.copy()
            changed[:, i] = rng.permutation(states[:, i])
            scores[i] = (network(torch.as_tensor(changed)).max(dim=1).values - base).abs().mean()
    return scores


def visited_states(env, agent, games, eps, seed, max_states=20_000, log_every=5.0):
    """Play `games` evaluation games (ε-greedy with `eps`) and return every observation seen,
    (N, *obs), at most `max_states`; a progress line every `log_every` seconds."""
    states, last_log = [], time.time()

    def choose(obs):
        nonlocal last_log
        states.append(obs)
        if time.time() - last_log > log_every:
            print(f"  playing: {len(states):,} states so far", flush=True)
            last_log = time.time()
        return agent.act(obs, eps)
    play_games(env, choose, max_steps=max_states, max_games=games, seed=seed)
    return np.array(states)


def top_bytes_text(scores, labels, count=6):
    """'72 paddle x (0.81), 99 ball x (0.40), …': the `count` highest-scoring bytes."""
    order = np.argsort(scores)[::-1][:count]
    return ", ".join(f"{i}{' ' + labels[i] if i in labels else ''} ({scores[i]:.3g})"
                     for i in order)


def draw_ram_explanation(path, title, gradient, perturbation, states, values, value_name,
                         labels):
    """explain.png for RAM: the two saliency maps as 8 × 16 grids of the 128 bytes (labelled
    bytes named), and each labelled byte (up to 6, bricks aside) against the state's value."""
    singles = [i for i, name in sorted(labels.items()) if name != "bricks"][:6]
    mosaic = [["grad", "grad", "pert", "pert"], ["grad", "grad", "pert", "pert"]]
    mosaic += [[f"b{k}" if k < len(singles) else "." for k in range(row, row + 4)]
               for row in (0, 4)] if singles else []
    with png_figure(path, (15, 10 if singles else 5.5), mosaic=mosaic) as axes:
        for key, scores, name in (("grad", gradient, "gradient |∂ max Q / ∂(byte/255)|"),
                                  ("pert", perturbation, "perturbation |Δ max Q|, byte from "
                                                         "another visited state")):
            ax, grid = axes[key], scores.reshape(8, 16)
            image = ax.imshow(grid, cmap="magma", vmin=0)
            ax.figure.colorbar(image, ax=ax, fraction=0.025)
            for i, name_i in labels.items():
                ax.text(i % 16, i // 16, "br" if name_i == "bricks" else name_i,
                        ha="center", va="center", fontsize=6, color="cyan",
                        rotation=0 if name_i == "bricks" else 30)
            ax.set_xticks(range(16), [str(c) for c in range(16)], fontsize=7)
            ax.set_yticks(range(8), [f"{16 * r}" for r in range(8)], fontsize=7)
            ax.set(title=name, xlabel="byte = row + column")
        for k, i in enumerate(singles):
            ax = axes[f"b{k}"]
            ax.scatter(states[:, i], values, s=3, alpha=0.3)
            ax.set(title=f"byte {i}: {labels[i]}", xlabel="byte value",
                   ylabel=value_name if k % 4 == 0 else None)
        figure = axes["grad"].figure
        figure.suptitle(title, fontsize=11)


def draw_pixel_explanation(path, title, network, states, count=4):
    """explain.png for pixels: `count` visited states spread over the games, each its newest
    frame in grey with the gradient map |∂ max Q / ∂ pixel| (summed over the stacked frames)
    over it in red."""
    picks = np.linspace(0, len(states) - 1, count).round().astype(int)
    with png_figure(path, (3.2 * count, 3.6), ncols=count) as axes:
        for ax, k in zip(np.atleast_1d(axes), picks):
            saliency = gradient_saliency(network, states[k:k + 1]).sum(axis=0)   # (84, 84)
            ax.imshow(states[k][-1], cmap="gray")
            ax.imshow(saliency / max(saliency.max(), 1e-12), cmap="Reds", alpha=0.6)
            ax.set(title=f"state {k}", xticks=[], yticks=[])
        np.atleast_1d(axes)[0].figure.suptitle(title, fontsize=10)


def explain(checkpoint_path, to_path, games=3, eps=DEFAULT_EVAL_EPS, seed=1000):
    """--explain: play `games` evaluation games with a DQN checkpoint, measure which inputs
    max_a Q(s, a) depends on (gradient and perturbation, see the section's text) and draw
    explain.png at `to_path`. Returns the lines to print."""
    checkpoint = checkpoint_to_play(checkpoint_path, games, eps)
    if checkpoint["algo"] != "dqn":
        raise ValueError(f"--explain needs a DQN checkpoint; {checkpoint_path} holds a "
                         f"{checkpoint['algo']} one (its policy is linear: its weights θ are "
                         "what it reads)")
    cfg, env_id = checkpoint["config"], checkpoint["env_id"]
    env = make_env(env_id, cfg.noop_max, cfg.sticky_actions, obs=cfg.obs)
    agent = agent_from_checkpoint(checkpoint, seed)
    network = agent.qnetwork_local
    print(f"explain: {games} evaluation game(s) of {env_id} (ε {eps}) with {checkpoint_path}")
    try:
        states = visited_states(env, agent, games, eps, seed)
    finally:
        env.close()
    title = (f"{env_id}, {checkpoint['progress']['env_step']:,} agent steps: what max_a Q(s, a) "
             f"depends on over {len(states):,} states of {games} evaluation game(s)")
    if cfg.obs == "pixels":
        draw_pixel_explanation(to_path, title, network, states)
        return [f"wrote {to_path}: gradient maps of 4 of {len(states):,} states"]
    if states.ndim != 2:
        raise ValueError(f"--explain draws flat observations and pixels; {env_id} gives "
                         f"shape {states.shape[1:]}")
    gradient = gradient_saliency(network, states)
    print(f"  measuring: {states.shape[1]} inputs × {len(states):,} states", flush=True)
    perturbation = perturbation_saliency(network, states, seed)
    q_values, values = q_values_and_value(network, states)
    value_name = "max_a Q(s, a)" if values is None else "V(s)"
    values = q_values.max(axis=1) if values is None else values
    labels = ram_labels(env_id) if states.shape[1] == 128 else {}
    if states.shape[1] == 128:
        draw_ram_explanation(to_path, title, gradient, perturbation, states, values, value_name,
                             labels)
    else:
        draw_feature_explanation(to_path, title, gradient, perturbation)
    lines = [f"wrote {to_path}", "  highest gradient:     " + top_bytes_text(gradient, labels),
             "  highest perturbation: " + top_bytes_text(perturbation, labels)]
    if states.shape[1] == 128 and not labels:
        lines.append(f"  (no published meaning of {game_name(env_id)}'s RAM bytes here: "
                     "the map is unlabelled)")
    return lines


def draw_feature_explanation(path, title, gradient, perturbation):
    """explain.png for a short float observation (CartPole's 4 numbers): both measures as
    bars, one pair per input."""
    with png_figure(path, (8, 4)) as ax:
        inputs = np.arange(len(gradient))
        ax.bar(inputs - 0.2, gradient, 0.4, label="gradient |∂ max Q / ∂x|")
        ax.bar(inputs + 0.2, perturbation, 0.4, label="perturbation |Δ max Q|")
        ax.set(xlabel="input", ylabel="mean over visited states", title=title)
        ax.title.set_fontsize(8)
        ax.set_xticks(inputs)
        ax.legend()


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 17. The games benchmark: many games × seeds, with intervals, here or on a cluster
# ════════════════════════════════════════════════════════════════════════════════════════════════
# DQN from RAM on several Atari games × seeds for the same budget, each (game, seed) pair one
# training run (the same command a student types, so the same loop), and a report a paper could
# use. Scores are human-normalised: HNS = (score − random) / (human − random); HNS 0 plays like
# random, 1 like a human tester.
#
# The random and human scores of the 57 games of the standard suite, from DeepMind's DQN Zoo
# (dqn_zoo/atari_data.py: random and professional-human testers, up to 30 no-ops at the start,
# games capped at 30 minutes). This is the table most papers since 2016 use (van Hasselt et al.
# 2016, Wang et al. 2016, Rainbow, Agarwal et al. 2021). It differs from the Nature DQN table
# (Mnih et al. 2015) for some games; of the seven below: human Boxing 12.1 (Nature 4.3),
# Breakout 30.5 (31.8), Enduro 860.5 (309.6), Pong 14.6 (9.3), Seaquest 42,054.7 (20,182),
# SpaceInvaders 1,668.7 (1,652). Reports of this project before 2026-12-03 used Nature's.
ATARI_RANDOM_HUMAN = {
    "Alien": (227.8, 7127.7), "Amidar": (5.8, 1719.5), "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3), "Asteroids": (719.1, 47388.7), "Atlantis": (12850.0, 29028.1),
    "BankHeist": (14.2, 753.1), "BattleZone": (2360.0, 37187.5),
    "BeamRider": (363.9, 16926.5), "Berzerk": (123.7, 2630.4), "Bowling": (23.1, 160.7),
    "Boxing": (0.1, 12.1), "Breakout": (1.7, 30.5), "Centipede": (2090.9, 12017.0),
    "ChopperCommand": (811.0, 7387.8), "CrazyClimber": (10780.5, 35829.4),
    "Defender": (2874.5, 18688.9), "DemonAttack": (152.1, 1971.0),
    "DoubleDunk": (-18.6, -16.4), "Enduro": (0.0, 860.5), "FishingDerby": (-91.7, -38.7),
    "Freeway": (0.0, 29.6), "Frostbite": (65.2, 4334.7), "Gopher": (257.6, 2412.5),
    "Gravitar": (173.0, 3351.4), "Hero": (1027.0, 30826.4), "IceHockey": (-11.2, 0.9),
    "Jamesbond": (29.0, 302.8), "Kangaroo": (52.0, 3035.0), "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3), "MontezumaRevenge": (0.0, 4753.3),
    "MsPacman": (307.3, 6951.6), "NameThisGame": (2292.3, 8049.0),
    "Phoenix": (761.4, 7242.6), "Pitfall": (-229.4, 6463.7), "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3), "Qbert": (163.9, 13455.0), "Riverraid": (1338.5, 17118.0),
    "RoadRunner": (11.5, 7845.0), "Robotank": (2.2, 11.9), "Seaquest": (68.4, 42054.7),
    "Skiing": (-17098.1, -4336.9), "Solaris": (1236.3, 12326.7),
    "SpaceInvaders": (148.0, 1668.7), "StarGunner": (664.0, 10250.0),
    "Surround": (-10.0, 6.5), "Tennis": (-23.8, -8.3), "TimePilot": (3568.0, 5229.2),
    "Tutankham": (11.4, 167.6), "UpNDown": (533.4, 11693.2), "Venture": (0.0, 1187.5),
    "VideoPinball": (16256.9, 17667.9), "WizardOfWor": (563.5, 4756.5),
    "YarsRevenge": (3092.9, 54576.9), "Zaxxon": (32.5, 9173.3)}

# The seven games the defaults were chosen on (the benchmark's default), and a held-out set the
# defaults are never tuned on: Atari-5 (Aitchison et al. 2023), five games picked by others so
# that their scores predict the median over all 57 — none of them is among the seven.
TUNING_GAMES = ("Boxing", "Breakout", "Enduro", "Freeway", "Pong", "Seaquest", "SpaceInvaders")
HELD_OUT_GAMES = ("BattleZone", "DoubleDunk", "NameThisGame", "Phoenix", "Qbert")


def game_name(env_id):
    """'ALE/SpaceInvaders-v5' → 'SpaceInvaders'."""
    return env_id.removeprefix("ALE/").rsplit("-v", 1)[0]


def human_normalised(game, score):
    """HNS of a raw score (NaN for a game without random and human scores)."""
    random_score, human = ATARI_RANDOM_HUMAN.get(game, (math.nan, math.nan))
    return (score - random_score) / (human - random_score)


# Intervals (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"): a few
# seeds per game give a noisy score, so every number comes with a 95% interval from the
# stratified bootstrap: resample each game's runs (seeds) with replacement, within the game,
# recompute the statistic, repeat; the interval holds the middle 95% of the recomputed values.
# Across games: the median and the mean of the per-game means, and the interquartile mean (IQM:
# the mean of the middle 50% of all runs pooled, robust to a few outliers like the median, yet
# using half the runs instead of one).
def interquartile_mean(scores):
    """IQM along the last axis, NaNs (absent runs) left out: sort, drop the lowest and highest
    quarter (int(n/4) runs each), average the rest."""
    ordered = np.sort(scores, axis=-1)  # NaNs sort last
    n = int(np.isfinite(ordered).sum(axis=-1).max())
    cut = n // 4
    return ordered[..., cut:n - cut].mean(axis=-1)


def per_game_means(runs):
    """runs: (..., games, seeds) with NaN where a game has fewer seeds → (..., games)."""
    return np.nanmean(runs, axis=-1)


AGGREGATES = {
    "median": lambda runs: np.median(per_game_means(runs), axis=-1),
    "mean": lambda runs: per_game_means(runs).mean(axis=-1),
    "IQM": lambda runs: interquartile_mean(runs.reshape(*runs.shape[:-2], -1)),
}


def stratified_bootstrap(per_game, statistic, reps=2000, level=0.95, seed=0):
    """(point estimate, low, high) of statistic(runs) for per_game, a list of each game's run
    scores. statistic takes an array (..., games, seeds) (NaN-padded) and reduces the last two
    axes (it may return more values per draw, e.g. a curve)."""
    seeds = max(len(scores) for scores in per_game)
    runs = np.full((len(per_game), seeds), np.nan)
    for g, scores in enumerate(per_game):
        runs[g, :len(scores)] = scores
    rng = np.random.default_rng(seed)
    draws = np.full((reps, len(per_game), seeds), np.nan)
    for g, scores in enumerate(per_game):
        scores = np.asarray(scores, dtype=float)
        draws[:, g, :len(scores)] = scores[rng.integers(0, len(scores), (reps, len(scores)))]
    values = statistic(draws)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail], axis=0)
    return statistic(runs), low, high


def score_profile(thresholds):
    """Statistic for a performance profile: for each threshold τ, the fraction of runs with a
    score above τ (each game weighted equally)."""
    def fraction_above(runs):
        above = np.where(np.isnan(runs)[..., None], np.nan, runs[..., None] > thresholds)
        return np.nanmean(above, axis=-2).mean(axis=-2)
    return fraction_above


def mean_at_step(rows, step):
    """The 100-game mean of history.csv rows at agent step `step`: the last 100 games finished
    by then (NaN before the first)."""
    return float(mean_at_steps([int(row["env_step"]) for row in rows],
                               [float(row["score"]) for row in rows], [step], math.inf)[0])


def run_steps(run_dir):
    """Agent steps a run folder's checkpoint has reached (0 before its first checkpoint)."""
    if not (run_dir / "model.pt").is_file():
        return 0
    return load_checkpoint(run_dir)["progress"]["env_step"]


def live_steps(run_dir):
    """Agent steps a running run has reached, for the progress line: its last finished game's
    step, or its checkpoint's where that is later (a checkpoint comes only every 50 games, far
    apart in a game with long episodes)."""
    history = run_dir / "history.csv"
    rows = read_history(history) if history.is_file() else []
    return max(run_steps(run_dir), int(rows[-1]["env_step"]) if rows else 0)


def pair_name(env_id, seed):
    """The run folder (and log) name of one (game, seed) pair: 'Breakout-seed0'."""
    return f"{game_name(env_id)}-seed{seed}"


def run_result(env_id, seed, run_dir, status, budget):
    """One run of the report, from its history.csv and checkpoint: its score is the 100-game
    mean at the budget (a run extended by hand past it is compared where the others end)."""
    history = run_dir / "history.csv"
    rows = read_history(history) if history.is_file() else []
    mean = mean_at_step(rows, budget)
    return {"game": game_name(env_id), "seed": seed, "score": mean,
            "hns": human_normalised(game_name(env_id), mean), "games": len(rows),
            "steps": run_steps(run_dir), "history": rows,
            "minutes": float(rows[-1]["seconds"]) / 60 if rows else 0.0, "status": status}


def interval_text(point, low, high, digits):
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def game_summaries(results):
    """Per game (in the order first seen): its finished runs' mean score and HNS with 95%
    bootstrap intervals over the seeds."""
    summaries = {}
    for r in results:
        summaries.setdefault(r["game"], {"game": r["game"], "runs": []})["runs"].append(r)
    for s in summaries.values():
        done = [r for r in s["runs"] if r["status"] == "ok" and math.isfinite(r["score"])]
        s["done"] = done
        random_score, human = ATARI_RANDOM_HUMAN.get(s["game"], (math.nan, math.nan))
        s["random"], s["human"] = random_score, human
        if done:
            mean = AGGREGATES["mean"]
            s["score"] = stratified_bootstrap([[r["score"] for r in done]], mean)
            s["hns"] = tuple(human_normalised(s["game"], v) for v in s["score"])
    return list(summaries.values())


def game_groups(scored):
    """[(label, games' summaries)]: all games, then the tuning and the held-out games apart
    where the benchmark mixes them."""
    groups = [("all games", scored)]
    for label, games in (("the games the defaults were chosen on", TUNING_GAMES),
                         ("held-out games (never tuned on)", HELD_OUT_GAMES)):
        part = [s for s in scored if s["game"] in games]
        if part and len(part) < len(scored):
            groups.append((label, part))
    return groups


def aggregate_lines(summaries):
    """The report's lines across games: median, mean and IQM of HNS with intervals, over all
    games and, where the benchmark mixes them, over the tuning and the held-out games apart."""
    scored = [s for s in summaries if s["done"] and math.isfinite(s["random"])]
    lines = []
    for label, group in game_groups(scored) if scored else []:
        per_game = [[r["hns"] for r in s["done"]] for s in group]
        runs = sum(len(scores) for scores in per_game)
        lines += [f"{label.capitalize()}: {len(group)} game(s), {runs} finished run(s) (95% "
                  "stratified-bootstrap intervals, 2,000 draws):", ""]
        if max(map(len, per_game)) == 1:
            lines[-2] = lines[-2].replace("(95% stratified-bootstrap intervals, 2,000 draws)",
                                          "(one run per game: no intervals)")
        for name, statistic in AGGREGATES.items():
            point, low, high = stratified_bootstrap(per_game, statistic)
            interval = interval_text(point, low, high, 2) if runs > len(group) else f"{point:.2f}"
            lines.append(f"- {name} HNS: **{interval}**")
        lines.append("")
    return lines[:-1]


def run_note(r):
    """The per-run table's last column: why a run does not count (empty if it does)."""
    if r["status"] != "ok":
        return r["status"]
    return "" if r["games"] else "no game ended within the budget: not counted"


def write_games_report(results, folder, command, budget):
    """games.md (tables, intervals, the command), results.csv (one row per run), games.png
    (HNS per game with intervals) and, once runs finished, aggregates.png (IQM HNS against
    agent steps; the performance profile). Returns the report's lines across games."""
    summaries = game_summaries(results)
    lines = [f"`{command}`", "",
             "Score: the mean over seeds of each run's last 100 games; HNS = (score − random) / "
             "(human − random) with DQN Zoo's random and human scores; [95% bootstrap "
             "interval over the seeds]. Only runs that finished count.", "",
             "| game | random | human | finished runs | score | HNS | score per seed |",
             "|---|---|---|---|---|---|---|"]
    for s in summaries:
        if len(s["done"]) > 1:
            score, hns = interval_text(*s["score"], 1), interval_text(*s["hns"], 2)
        elif s["done"]:   # one run: no interval to give
            score, hns = f"{s['score'][0]:.1f} (1 run)", f"{s['hns'][0]:.2f} (1 run)"
        else:
            score = hns = "–"
        per_seed = ", ".join(f"{r['score']:.1f}" for r in s["done"])
        if not math.isfinite(s["random"]):
            hns = "– (no reference)"
        reference = [f"{v:g}" if math.isfinite(v) else "–" for v in (s["random"], s["human"])]
        lines.append(f"| {s['game']} | {reference[0]} | {reference[1]} | {len(s['done'])}/"
                     f"{len(s['runs'])} | {score} | {hns} | {per_seed} |")
    aggregates = aggregate_lines(summaries)
    unscored = [s["game"] for s in summaries if s["done"] and not math.isfinite(s["random"])]
    if unscored:
        aggregates += ["", f"Not in the HNS figures: {', '.join(unscored)} (no random and human "
                           "score in DQN Zoo's table of 57 games; the raw scores are above)."]
    if aggregates:
        lines += ["", *aggregates]
    lines += ["", "| game | seed | last 100 games | HNS | games | agent steps | minutes | |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['game']} | {r['seed']} | {r['score']:.1f} | {r['hns']:.2f} | {r['games']} | "
              f"{r['steps']:,} | {r['minutes']:.1f} | "
              f"{run_note(r)} |" for r in results]
    replace_file(folder / "games.md", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))

    def write_csv(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["game", "seed", "score", "hns", "games", "agent_steps", "minutes",
                             "status"])
            writer.writerows([r["game"], r["seed"], f"{r['score']:.2f}", f"{r['hns']:.4f}",
                              r["games"], r["steps"], f"{r['minutes']:.2f}", r["status"]]
                             for r in results)
    replace_file(folder / "results.csv", write_csv)
    replace_file(folder / "games.png", lambda path: draw_games_chart(summaries, path))
    finished = [s for s in summaries if s["done"] and math.isfinite(s["random"])]
    if finished:
        replace_file(folder / "aggregates.png",
                     lambda path: draw_aggregates(finished, budget, path))
    return aggregates


def draw_games_chart(summaries, path):
    """HNS per game with its interval; a symmetric-log axis (linear up to 1, logarithmic
    beyond) keeps a game at HNS 0.05 readable beside one at 20, and each value is printed."""
    shown = [s for s in summaries if s["done"] and math.isfinite(s["random"])]
    with png_figure(path, (7.5, 0.45 * max(1, len(shown)) + 1.6)) as ax:
        names = [s["game"] for s in shown]
        points = np.array([s["hns"][0] for s in shown])
        errors = np.array([[s["hns"][0] - s["hns"][1] for s in shown],
                           [s["hns"][2] - s["hns"][0] for s in shown]])
        colours = ["tab:orange" if name in HELD_OUT_GAMES else "tab:blue" for name in names]
        ax.barh(names, points, xerr=errors, color=colours, ecolor="black", capsize=3)
        if set(names) & set(HELD_OUT_GAMES):
            ax.barh([names[0]], [0], color="tab:orange", label="held out (never tuned on)")
        for y, s in enumerate(shown):
            ax.text(max(s["hns"][2], 0) * 1.15 + 0.05, y, f"{s['hns'][0]:.2f}", va="center",
                    fontsize=8)
        ax.set_xscale("symlog", linthresh=1.0)
        top = max([1.0, *(s["hns"][2] for s in shown)])
        ax.set_xlim(min([-0.1, *(s["hns"][1] for s in shown)]), top * 3)
        ax.axvline(0, color="black", lw=0.8)
        ax.axvline(1, color="tab:green", ls="--", label="human (HNS 1)")
        runs = sorted({len(s["done"]) for s in shown}) or [0]
        ax.set(xlabel="human-normalised score (0 = random, 1 = human; symlog axis)",
               title=f"DQN from RAM: mean over {'/'.join(map(str, runs))} seed(s), 95% interval")
        ax.invert_yaxis()
        ax.legend(loc="lower right")


def draw_aggregates(finished, budget, path):
    """Left: IQM HNS against agent steps with its 95% band (sample efficiency). Right: the
    performance profile, the fraction of runs scoring above each HNS τ, with its band. One
    colour per group of games (all; and the tuning and held-out games apart, where mixed)."""
    steps = np.linspace(budget / 20, budget, 20)
    groups = game_groups(finished)
    top = max(r["hns"] for s in finished for r in s["done"])
    taus = np.linspace(0, max(2.0, top), 201)
    with png_figure(path, (12, 4.5), ncols=2) as (left, right):
        for (label, group), colour in zip(groups, ("black", "tab:blue", "tab:orange")):
            name = f"{label} ({len(group)})"
            # the same bootstrap seed at every step resamples the same seeds: a band of whole
            # curves. (A step before a run's first game has no score: NaN, left out.)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                curve = np.array([stratified_bootstrap(
                    [[human_normalised(s["game"], mean_at_step(r["history"], step))
                      for r in s["done"]] for s in group], AGGREGATES["IQM"]) for step in steps])
            left.plot(steps, curve[:, 0], color=colour, label=name)
            left.fill_between(steps, curve[:, 1], curve[:, 2], color=colour, alpha=0.2)
            profile = stratified_bootstrap([[r["hns"] for r in s["done"]] for s in group],
                                           score_profile(taus))
            right.plot(taus, profile[0], color=colour, label=name)
            right.fill_between(taus, profile[1], profile[2], color=colour, alpha=0.2)
        left.set(xlabel="agent steps", ylabel="IQM human-normalised score",
                 title="sample efficiency: IQM HNS (band: 95% interval)")
        left.legend(loc="upper left", fontsize=8)
        right.axvline(1, color="tab:green", ls="--", lw=0.8, label="human (HNS 1)")
        right.set_xscale("symlog", linthresh=1.0)
        right.set(xlabel="human-normalised score τ (symlog axis)",
                  ylabel="fraction of runs with HNS > τ", ylim=(0, 1.02),
                  title="performance profile at the end (band: 95% interval)")
        right.legend(loc="upper right", fontsize=8)


def stop_when_parent_dies():
    """In a child process before it starts (Linux): have the kernel send it SIGTERM, which makes
    a run save and stop, when its parent dies — even by kill -9. Elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def start_run(command, log, **popen_args):
    """Start one training run of the benchmark: its output goes to `log`; in a session of its
    own, so a Ctrl-C in the terminal reaches only the benchmark, which passes on one SIGTERM;
    and stopped (saving) if the process that started it dies."""
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=stop_when_parent_dies,
                            **popen_args)


def process_stat(pid):
    """The fields of /proc/PID/stat after the process's name (state first; None where there is
    no such file: another OS, or the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_token(pid):
    """What tells a process from a later one given the same PID: its start time in /proc
    (Linux; None elsewhere or when it is gone)."""
    fields = process_stat(pid)
    return fields[19] if fields else None


def process_gone(pid, token):
    """True once process `pid` (started at `token`, process_token's) has ended or is a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    if token is None:
        return False
    fields = process_stat(pid)   # one read: its state and its start time
    return fields is None or fields[0] == "Z" or fields[19] != token


def run_pair(command, log_path, watch=None):
    """The job submitit runs for one (game, seed): the training command as a child process,
    its output appended to log_path; returns the run's exit status. With `watch`, (pid, token)
    of the benchmark on this machine (submitit's local executor), the run is stopped as below
    when that process dies, even by kill -9: the local executor's processes outlive it.

    A stop signal this job gets is passed on to the run once, as SIGTERM (the run saves and
    stops; the next benchmark on the folder resumes it): SIGINT is how submitit cancels a local
    job, SIGTERM and SIGUSR2 how its local executor stops one at its time limit. On Slurm the
    cluster signals every process of the job itself (SIGTERM on scancel or preemption, SIGUSR2
    shortly before the time limit), so nothing but SIGINT is passed on there."""
    with open(log_path, "a") as log:
        child = start_run(command, log)
        on_slurm = "SLURM_JOB_ID" in os.environ
        passed_on = []

        def pass_on(signum, frame):
            if not passed_on:
                passed_on.append(signum)
                child.send_signal(signal.SIGTERM)
        handlers = {signal.SIGINT: pass_on}
        if not on_slurm:
            handlers[signal.SIGTERM] = pass_on
        if hasattr(signal, "SIGUSR2"):
            handlers[signal.SIGUSR2] = signal.SIG_IGN if on_slurm else pass_on
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            while True:
                try:
                    return child.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    if watch is not None and process_gone(*watch):
                        pass_on(signal.SIGTERM, None)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class ChildRun:
    """A run started by LocalProcesses: poll() → None while it runs, then its exit status."""

    def __init__(self, process, log, release):
        self.process, self.log, self.release = process, log, release

    def poll(self):
        code = self.process.poll()
        if code is not None and self.release:
            self.log.close()
            self.release()
            self.release = None
        return code

    def stop(self):
        self.process.send_signal(signal.SIGTERM)

    def wait(self):
        self.process.wait()
        return self.poll()


class LocalProcesses:
    """Run each (game, seed) as a child process of this one, `jobs` at a time, each pinned to
    its share of the cores (where the OS lets us), so that its split into worker processes
    (worker_split) counts only the cores it really has."""

    def __init__(self, jobs):
        self.jobs = jobs
        self.cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else []
        self.share = max(1, len(self.cores) // jobs)
        self.free_slots = list(range(jobs))

    def start(self, command, log_path):
        slot = self.free_slots.pop(0)
        log = open(log_path, "a")
        if self.cores:  # a child inherits the cores its parent may use when it starts
            os.sched_setaffinity(0, {self.cores[(slot * self.share + k) % len(self.cores)]
                                     for k in range(self.share)})
        try:
            process = start_run(command, log)
        finally:
            if self.cores:
                os.sched_setaffinity(0, self.cores)
        return ChildRun(process, log, lambda: self.free_slots.append(slot))


class SubmititRun:
    """A run submitted through submitit: poll() → None while the job runs, then its status."""

    def __init__(self, job, log_path):
        self.job, self.log_path = job, log_path

    def poll(self):
        if not self.job.done():
            return None
        try:
            return int(self.job.result())
        except Exception as error:  # noqa: BLE001 (a job that died: its reason into the log)
            with open(self.log_path, "a") as log:
                log.write(f"\nsubmitit job {self.job.job_id}: {first_line(error)}\n")
            return 1

    def stop(self):
        self.job.cancel(check=False)

    def wait(self, seconds=300):
        deadline = time.time() + seconds
        while not self.job.done() and time.time() < deadline:
            time.sleep(0.5)
        return self.poll()


class SubmititJobs:
    """Submit each (game, seed) as one job through submitit (Slurm, or its local executor, which
    runs the same job on this machine). The benchmark stays the place that gathers results."""

    def __init__(self, cluster, folder, parameters):
        # a local job stops its run when this benchmark dies (kill -9 included); a cluster's
        # jobs run elsewhere: Slurm's scancel stops them
        self.watch = (os.getpid(), process_token(os.getpid())) if cluster == "local" else None
        try:
            import submitit
        except ImportError:
            raise ValueError("--submitit needs the submitit package: pip install submitit"
                             ) from None
        if run_pair.__module__ != "__main__":  # imported (tests): the job needs no import path
            import cloudpickle
            cloudpickle.register_pickle_by_value(sys.modules[run_pair.__module__])
        self.executor = submitit.AutoExecutor(folder=folder / "submitit" / "%j", cluster=cluster)
        try:
            self.executor.update_parameters(**parameters)
        except Exception as error:  # noqa: BLE001 (submitit names the parameter it refuses)
            raise ValueError(f"--submitit-param: {first_line(error)}") from None

    def start(self, command, log_path):
        try:
            job = self.executor.submit(run_pair, command, str(log_path), self.watch)
        except Exception as error:  # noqa: BLE001 (sbatch missing or refusing, …)
            raise ValueError(f"submitit could not submit the job: {first_line(error)}") from None
        return SubmititRun(job, log_path)


def submitit_parameters(texts, cfg):
    """--submitit-param KEY=VALUE … as submitit's update_parameters() arguments, over defaults
    that fit one run: 2 CPUs, 8 GB, and a time limit of the budget at 500 agent steps/s plus
    15 minutes (submitit's own default is 5 minutes)."""
    minutes = cfg.max_minutes or cfg.total_steps / 500 / 60
    parameters = {"name": "breakout_rl", "cpus_per_task": 2, "mem_gb": 8,
                  "timeout_min": int(minutes) + 15}
    for text in texts or []:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ValueError(f"--submitit-param takes KEY=VALUE, got {text!r}")
        for kind in (int, float):
            with contextlib.suppress(ValueError):
                value = kind(value)
                break
        parameters[key] = value
    return parameters


BENCHMARK_STATE = "benchmark.json"
BENCHMARK_SEEDS = (0, 1, 2)


def pair_status(run_dir, code, budget):
    """(status, whether to train it) of one pair, from its folder first and its last recorded
    exit status `code` second: a checkpoint at the budget is finished ("ok") whatever was
    recorded (it may have finished while its benchmark was frozen); a run that exited 0 short
    of the budget was cut (--max-minutes); a folder that is gone is missing."""
    try:
        steps = run_steps(run_dir)
    except ValueError as error:
        return f"its model.pt is unreadable ({first_line(error)}): remove {run_dir.name}", False
    if steps >= budget:
        return "ok", False
    if code == 0 and (run_dir / "model.pt").is_file():
        return (f"cut at {steps:,} of {budget:,} agent steps (--max-minutes?): run the "
                "benchmark again to continue it"), True
    if code == 0:
        return "missing (its folder is gone): run the benchmark again to train it", True
    return run_status(code, run_dir.name), True


def pairs_in_folder(folder, state):
    """The (env_id, seed) pairs a benchmark folder holds: those its state records and the run
    folders GAME-seedN with a checkpoint (so a deleted benchmark.json loses nothing)."""
    names = set(state["exit"]) | {d.name for d in folder.glob("*-seed*")
                                  if (d / "model.pt").is_file()}
    pairs = []
    for name in sorted(names):
        game, _, seed = name.rpartition("-seed")
        if game and seed.isdigit() and f"ALE/{game}-v5" in gym.registry:
            pairs.append((f"ALE/{game}-v5", int(seed)))
    return pairs


def read_benchmark_state(path, child_flags):
    """A benchmark folder's benchmark.json ({"flags": [...], "exit": {pair: code}}), or a new
    one; ValueError (one line) for a file that is not one."""
    if not path.is_file():
        return {"flags": child_flags, "exit": {}}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not readable JSON ({first_line(error)}); move it away to "
                         "rebuild the report from the run folders") from None
    if not (isinstance(state, dict) and isinstance(state.get("exit"), dict)
            and all(isinstance(c, int) or c is None for c in state["exit"].values())):
        raise ValueError(f"{path} is not a benchmark's state (an 'exit' table of run → exit "
                         "status); move it away to rebuild the report from the run folders")
    state.setdefault("flags", child_flags)
    return state


def run_status(code, name):
    """The report's status for a run's exit status."""
    if code == 0:
        return "ok"
    if code is None:
        return "not started"
    if code in (130, 129, 143, 140):
        return "stopped, saved: run the benchmark again to resume it"
    return f"exit {code}: see {name}.log"


def pair_command(env_id, seed, run_dir, child_flags):
    """The command that trains one pair: a new run, or --resume of an interrupted one."""
    program = [sys.executable, str(Path(__file__).resolve())]
    if (run_dir / "model.pt").is_file():
        return [*program, "--resume", str(run_dir), "--log-every", "60"]
    if run_dir.is_dir() and holds_run(run_dir):
        raise ValueError(f"{run_dir} holds games but no checkpoint to resume from; remove it "
                         "to run this pair again")
    return [*program, "--algo", "dqn", "--env", env_id, "--seed", str(seed), "--out",
            str(run_dir), "--no-gif-at-end", "--log-every", "60", *child_flags]


def progress_text(finished, total, running, seconds, new_steps, steps_left):
    """The benchmark's progress line: runs finished of `total`, the runs going now, minutes so
    far, and an ETA at the rate of the `new_steps` trained in these `seconds`."""
    rate = new_steps / seconds if seconds > 0 else 0
    eta = f", ETA {steps_left / rate / 60:.0f} min" if rate > 0 and running else ""
    return (f"games benchmark: {finished}/{total} runs finished, running "
            f"{', '.join(running) or '-'} | {seconds / 60:.1f} min{eta}")


def benchmark_games(pairs, folder, child_flags, launcher, jobs, budget, log_every=30.0):
    """Train DQN on each (env_id, seed) pair into folder/GAME-seedN (its log GAME-seedN.log),
    `jobs` at a time through `launcher`, then write the report. Pairs that finished in an
    earlier benchmark on this folder are skipped, interrupted ones resume from their
    checkpoints. Returns the report's runs and its lines across games.

    child_flags: the command-line flags every run gets (budget, hyperparameters); budget: the
    agent steps each run trains for (for the progress line and the curves)."""
    wanted = list(pairs)
    state_path = folder / BENCHMARK_STATE
    state = read_benchmark_state(state_path, child_flags)

    def save_state():
        replace_file(state_path, lambda tmp: Path(tmp).write_text(json.dumps(state, indent=1)))

    def record(name, code):
        state["exit"][name] = code
        save_state()
    # every run of the folder is reported, those of earlier benchmarks on it too
    pairs = pairs + [pair for pair in pairs_in_folder(folder, state) if pair not in pairs]
    statuses, pending = {}, []
    for pair in pairs:
        name = pair_name(*pair)
        statuses[name], to_train = pair_status(folder / name, state["exit"].get(name), budget)
        if to_train and pair in wanted:
            pending.append(pair)
    finished = sum(status == "ok" for status in statuses.values())
    if finished:
        print(f"games benchmark: {finished} of {len(pairs)} runs finished earlier; skipped",
              flush=True)
    save_state()
    steps_of = {pair: run_steps(folder / pair_name(*pair)) if statuses[pair_name(*pair)] == "ok"
                or pair in pending else 0 for pair in wanted}
    steps_at_start = sum(steps_of.values())
    running = {}
    start, last_log = time.time(), 0.0
    previous_pause = None
    try:
        previous_pause = pause_runs_with_this_one(running)
        while pending or running:
            while pending and len(running) < jobs:
                pair = pending.pop(0)
                name = pair_name(*pair)
                try:
                    command = pair_command(*pair, folder / name, child_flags)
                except ValueError as error:
                    statuses[name] = str(error)
                    continue
                if "--resume" in command:
                    print(f"games benchmark: {name} resumes from step {steps_of[pair]:,}",
                          flush=True)
                with open(folder / f"{name}.log", "a") as log:   # what ran, for the reader
                    log.write(f"$ {' '.join(command)}\n")
                running[pair] = launcher.start(command, folder / f"{name}.log")
            for pair, run in list(running.items()):
                code = run.poll()
                if code is not None:
                    del running[pair]
                    record(pair_name(*pair), code)
                    statuses[pair_name(*pair)] = pair_status(folder / pair_name(*pair), code,
                                                             budget)[0]
                    steps_of[pair] = run_steps(folder / pair_name(*pair))
            if time.time() - last_log >= log_every or not (pending or running):
                for pair in running:
                    with contextlib.suppress(Exception):  # a checkpoint being replaced
                        steps_of[pair] = live_steps(folder / pair_name(*pair))
                done_steps = sum(steps_of.values())
                print(progress_text(sum(statuses[pair_name(*p)] == "ok" for p in wanted),
                                    len(wanted), [pair_name(*p) for p in running],
                                    time.time() - start, done_steps - steps_at_start,
                                    budget * len(wanted) - done_steps), flush=True)
                last_log = time.time()
            time.sleep(0.5)
    finally:
        if previous_pause is not None:
            signal.signal(signal.SIGTSTP, previous_pause)
        for run in running.values():  # interrupted: the runs save and stop
            run.stop()
        for pair, run in running.items():
            code = run.wait()
            record(pair_name(*pair), code)
            statuses[pair_name(*pair)] = pair_status(folder / pair_name(*pair), code, budget)[0]
        results = [run_result(env_id, seed, folder / pair_name(env_id, seed),
                              statuses[pair_name(env_id, seed)], budget)
                   for env_id, seed in pairs]
        games = list(dict.fromkeys(game_name(env_id) for env_id, _ in pairs))
        seeds = list(dict.fromkeys(seed for _, seed in pairs))
        aggregates = write_games_report(results, folder, " ".join(
            ["python breakout_rl.py", "--benchmark-games", *games,
             "--seeds", *map(str, seeds), *child_flags]), budget)
    return results, aggregates


# ════════════════════════════════════════════════════════════════════════════════════════════════
# 18. Command line
# ════════════════════════════════════════════════════════════════════════════════════════════════
# The training flags are generated from the two config dataclasses; --help lists the algorithms'
# hyperparameters first, then the run options. A flag that only one algorithm has is refused for
# the other. Bad input ends in one line on stderr and exit status 2; a failure during training
# (non-finite loss, an env that raised) in one line and status 1.


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line on stderr and exits with status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def config_flags():
    """{field name: [the config classes that have it]} over both algorithms, in field order."""
    flags = {}
    for config_class in ALGOS.values():
        for f in dataclasses.fields(config_class):
            flags.setdefault(f.name, []).append(config_class)
    return flags


WHAT_TO_TRAIN = ("env_id", "obs", "total_steps", "episodes")


def flag_group(name, classes):
    """Which --help group a config field's flag belongs to."""
    if name in WHAT_TO_TRAIN:
        return "what"
    if name in {f.name for f in dataclasses.fields(CommonConfig)}:
        return "run"
    return "both" if len(classes) == 2 else next(a for a, c in ALGOS.items() if c in classes)


def build_parser():
    parser = OneLineErrorParser(
        prog="breakout_rl.py",
        usage="%(prog)s [--algo {dqn,pg}] [--env ENV] [hyperparameters and options]\n"
              "       %(prog)s --eval RUN | --explain RUN | --resume RUN | --plot RUN [RUN ...]\n"
              "       %(prog)s --list-envs\n"
              "       %(prog)s --benchmark-env | --benchmark-train | --benchmark-games [GAME ...]",
        description="Train DQN or REINFORCE from Breakout's RAM, or on another Gymnasium env "
                    "with discrete actions and array observations. Defaults shown are the "
                    "dataclasses'; each env then gets its per-environment defaults, and a run "
                    "prints every hyperparameter it uses.",
        epilog="Examples: --algo dqn | --algo pg | --algo dqn --total-steps 150000 | "
               "--eval runs/RUN --gif agent.gif | --resume runs/RUN | --plot runs/A runs/B")
    what = parser.add_argument_group("what to train")
    what.add_argument("--algo", choices=list(ALGOS), default=None,
                      help="dqn: deep Q-network; pg: REINFORCE with a linear logistic "
                           "(2 actions) or softmax policy (default: dqn)")
    groups = {"what": what,
              "dqn": parser.add_argument_group("--algo dqn: hyperparameters"),
              "pg": parser.add_argument_group("--algo pg: hyperparameters"),
              "both": parser.add_argument_group("both algorithms: hyperparameters"),
              "run": parser.add_argument_group("run options")}
    for name, classes in config_flags().items():
        f = {x.name: x for x in dataclasses.fields(classes[0])}[name]
        defaults = {algo: getattr(cls(), name) for algo, cls in ALGOS.items() if cls in classes}
        if len(set(map(str, defaults.values()))) > 1:
            default_text = "default: " + ", ".join(f"{a} {v}" for a, v in defaults.items())
        else:
            shown = next(iter(defaults.values()))
            default_text = f"default: {shown}" if shown != "" else ""
        per_env = [f"{algo + ' ' if len(defaults) == 2 else ''}{env} {row[name]}"
                   for (algo, env), row in ENV_DEFAULTS.items() if name in row]
        if per_env:
            default_text += "; per env: " + ", ".join(per_env)
        help_text = f.metadata["help"] + (f" ({default_text})" if default_text else "")
        kwargs = {"default": None, "help": help_text}
        if isinstance(f.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(f.default, tuple):
            kwargs.update(type=int, nargs="+", metavar="N")
        else:
            kwargs["type"] = type(f.default)
            if "choices" not in f.metadata:
                kwargs["metavar"] = {int: "N", float: "X"}.get(type(f.default), "NAME")
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        flag = "--env" if name == "env_id" else "--" + name.replace("_", "-")
        groups[flag_group(name, classes)].add_argument(flag, dest=name, **kwargs)
    tools = parser.add_argument_group("evaluate, resume, compare")
    tools.add_argument("--eval", metavar="RUN",
                       help="play --episodes games (default 10) with a run folder's model.pt "
                            "(or a .pt file) and print mean ± std, min, max of the raw score")
    tools.add_argument("--gif", metavar="FILE", help="with --eval: write the first game as a GIF")
    tools.add_argument("--eval-eps", type=float,
                       help=f"ε while evaluating a DQN checkpoint (default: {DEFAULT_EVAL_EPS})")
    tools.add_argument("--resume", metavar="RUN",
                       help="continue a run folder from its last checkpoint (flags given here "
                            "override its config, e.g. a larger --total-steps or a new --lr). "
                            "Restored: weights, optimizer, step and game counters, so ε "
                            "continues. Not restored: the replay buffer, which refills for "
                            "--learning-starts steps; games played after the last checkpoint "
                            "are dropped from history.csv and played anew")
    tools.add_argument("--plot", metavar="RUN", nargs="+",
                       help="overlay the 100-game means of these run folders")
    tools.add_argument("--to", metavar="FILE",
                       help="with --plot: the image to write (default: compare.png); with "
                            "--explain: (default: RUN/explain.png)")
    tools.add_argument("--metric", metavar="NAME",
                       help="with --plot: draw this column of the runs' metrics.csv against "
                            "agent steps instead of the score (e.g. loss, q_mean, epsilon, "
                            "steps_per_second)")
    tools.add_argument("--reach", metavar="SCORE", nargs="+", type=float,
                       help="with --plot: also print the agent step at which each run's "
                            "100-game mean first reached each SCORE (e.g. 100 200)")
    tools.add_argument("--explain", metavar="RUN",
                       help="play --episodes evaluation games (default 3) with a DQN run's "
                            "model.pt and draw which inputs max_a Q depends on: the 128 RAM "
                            "bytes as a grid (gradient and perturbation, published byte "
                            "meanings labelled) or a saliency map over the screen")
    tools.add_argument("--benchmark-env", action="store_true",
                       help="measure the env's raw steps/s and a random policy's score")
    tools.add_argument("--benchmark-train", action="store_true",
                       help="DQN training speed with the flags given (e.g. --num-envs 4): agent "
                            "steps/s while learning (for --max-minutes, default 0.5), beside the "
                            "raw env's steps/s with the same and with one env")
    tools.add_argument("--list-envs", action="store_true",
                       help="list the Atari games and the other environments --env accepts")
    bench = parser.add_argument_group("benchmark on many games")
    bench.add_argument("--benchmark-games", metavar="GAME", nargs="*",
                       help="train DQN from RAM on each Atari game named (default: the seven "
                            "the defaults were chosen on, " + ", ".join(TUNING_GAMES) + "; "
                            "held out: " + " ".join(HELD_OUT_GAMES) + ") × each of --seeds, "
                            "with the training flags given, and write games.md (score and "
                            "human-normalised score with 95%% intervals; median, mean, IQM), "
                            "results.csv, games.png and aggregates.png. Run again with the "
                            "same --out and flags: finished runs are skipped, stopped ones "
                            "resumed")
    bench.add_argument("--seeds", type=int, nargs="+", metavar="S",
                       help="with --benchmark-games: the seeds of each game (default: "
                            + " ".join(map(str, BENCHMARK_SEEDS)) + ")")
    bench.add_argument("--jobs", type=int, metavar="N",
                       help="with --benchmark-games: runs at once (default: one per 2 cores; "
                            "with --submitit slurm, all)")
    bench.add_argument("--submitit", choices=["local", "slurm"],
                       help="with --benchmark-games: submit each run as a job through "
                            "submitit (in requirements.txt): slurm on a cluster, local to try "
                            "the same jobs on this machine")
    bench.add_argument("--submitit-param", metavar="KEY=VALUE", nargs="+",
                       help="with --submitit: job resources, submitit's names (default: "
                            "cpus_per_task=2 mem_gb=8 timeout_min=budget at 500 steps/s + 15; "
                            "e.g. slurm_partition=cpu timeout_min=180)")
    return parser


def config_from_args(args, algo, base=None):
    """Build `algo`'s config from the flags given (over `base`, a config to continue from);
    refuse flags that belong to the other algorithm."""
    config_class = ALGOS[algo]
    own = {f.name for f in dataclasses.fields(config_class)}
    values = dataclasses.asdict(base) if base else dict(env_defaults_applied(args, algo))
    flags = config_flags()
    for name, value in vars(args).items():
        if value is None or name not in flags:
            continue
        if name not in own:
            raise ValueError(f"--{name.replace('_', '-')} does not apply to --algo {algo}")
        values[name] = tuple(value) if isinstance(value, list) else value
    cfg = config_class(**values)
    validate_config(cfg)
    given = [name for name in ("per_alpha", "per_beta", "per_beta_steps")
             if getattr(args, name, None) is not None]
    if given and not getattr(cfg, "prioritized", False):
        raise ValueError(f"--{given[0].replace('_', '-')} sets prioritized replay, which this run "
                         "does not use: add --prioritized (or leave it out)")
    return cfg


def env_defaults_applied(args, algo):
    """The per-environment defaults that apply to this command line: its env's ENV_DEFAULTS row
    without the fields given as flags."""
    env_id = args.env_id or ALGOS[algo].env_id
    row = env_defaults(algo, env_id, getattr(args, "obs", None) or "ram")
    return {name: value for name, value in row.items() if getattr(args, name, None) is None}


# A run folder is the tool's when it holds this marker, the first file every run writes into its
# folder (a folder from before the marker is the tool's when it holds a model.pt). The tool never
# trains into a folder holding files it did not write, and never writes its outputs over them.
RUN_MARKER = ".breakout_rl-run"
RUN_FILES = ("model.pt", "history.csv", "metrics.csv", "config.json", "curve.png", "agent.gif",
             "run.lock", RUN_MARKER)


def is_run_folder(folder):
    """True if the tool made this folder (its marker) or trained in it (a model.pt)."""
    folder = Path(folder)
    return (folder / RUN_MARKER).is_file() or (folder / "model.pt").is_file()


def names_list(names, most=4):
    """'a, b, c and 2 more'."""
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def check_output_file(path, flag, magic, kind):
    """Raise ValueError unless writing a `kind` file at `path` (given as `flag`) destroys nothing:
    not a run's own file, not a folder, and not an existing file of another kind (its first
    bytes would be `magic`)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    if path.name in RUN_FILES and is_run_folder(path.parent):
        raise ValueError(f"{flag} {path} would replace the run's own {path.name}; "
                         "choose another file name")
    if path.exists():
        try:
            with open(path, "rb") as f:
                ours = f.read(len(magic)) == magic
        except OSError as error:
            raise ValueError(f"{flag} {path}: {first_line(error)}") from None
        if not ours:
            raise ValueError(f"{flag} {path} exists and is not a {kind} image; it is left as it "
                             "is: choose another file name")


def holds_run(out_dir):
    """True if the folder holds a checkpoint or a history with at least one game."""
    history = out_dir / "history.csv"
    return (out_dir / "model.pt").exists() or (history.is_file() and bool(read_history(history)))


def open_run_folder(out_dir, fresh, numbered=False):
    """Create the folder if needed and take its lock; returns (RunLock, the topmost folder this
    created: out_dir, a parent such as runs/, or None, and the folder). With `numbered`, a taken
    name gets a number instead (new_folder). A fresh run refuses a file, an unwritable place, a
    folder that holds a run and a folder that holds files this tool did not write."""
    if out_dir.exists() and not out_dir.is_dir() and not numbered:
        raise ValueError(f"--out {out_dir} is a file, not a folder")
    missing = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    created = missing[-1] if missing else None  # the topmost folder this command makes
    try:
        if numbered:
            out_dir = new_folder(out_dir)
            created = created or out_dir
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot write to --out {out_dir}: {first_line(error)}") from None
    if fresh and not is_run_folder(out_dir):
        others = sorted(path.name for path in out_dir.iterdir())
        if others:  # the user's own files: never replaced, not even by a lock file
            raise ValueError(f"--out {out_dir} holds files this tool did not write "
                             f"({names_list(others)}); choose an empty or a new folder")
    try:
        lock = RunLock(out_dir).acquire()
    except ValueError:
        remove_if_empty(out_dir, created)
        raise
    try:
        if fresh and holds_run(out_dir):
            raise ValueError(f"--out {out_dir} already holds a run; choose another folder "
                             "(or continue it with --resume)")
        if not (out_dir / RUN_MARKER).exists():
            (out_dir / RUN_MARKER).write_text("a breakout_rl run folder: the tool writes only "
                                              "its own files here\n")
    except (ValueError, OSError) as error:
        lock.release()
        remove_if_empty(out_dir, created)
        if isinstance(error, OSError):
            raise ValueError(f"cannot write to --out {out_dir}: {first_line(error)}") from None
        raise
    return lock, created, out_dir


def remove_if_empty(folder, created):
    """Remove the run folder, and the parents up to `created` that this command made, where
    nothing was written into them (but the marker)."""
    if created is None:
        return
    if (folder / RUN_MARKER).is_file() and [p.name for p in folder.iterdir()] == [RUN_MARKER]:
        (folder / RUN_MARKER).unlink()
    for path in (folder, *folder.parents):
        if not path.is_dir() or any(path.iterdir()):
            return
        path.rmdir()
        if path == created:
            return


def new_folder(stem):
    """Create and return the folder `stem`, or `stem-2`, `stem-3`, … where that is taken. The
    folder is made here, so two commands started in the same second never get the same one."""
    path, n = stem, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = stem.with_name(f"{stem.name}-{n}")
        except OSError as error:
            raise ValueError(f"cannot create {path}: {first_line(error)}") from None


def default_out_dir(algo, env_id, seed):
    """runs/<algo>-<env>-seed<N>-<timestamp> (open_run_folder numbers it if it is taken)."""
    return Path("runs") / (f"{algo}-{env_id.replace('/', '_')}-seed{seed}-"
                           f"{time.strftime('%Y%m%d-%H%M%S')}")


def resolve_env_id(name):
    """The registered id a command-line name means: a registered id as it is; any id in any
    case; an Atari game's short name ('pong', 'SpaceInvaders') → 'ALE/Pong-v5'; an id without
    its version ('cartpole') → its newest version. Unknown names are returned as they are, for
    make_env to explain."""
    if name in gym.registry:
        return name
    by_lower = {env_id.lower(): env_id for env_id in gym.registry}
    key = name.lower()
    for candidate in (key, f"ale/{key.removeprefix('ale/')}-v5"):
        if candidate in by_lower:
            return by_lower[candidate]
    versions = [env_id for env_id in gym.registry if env_id.lower().rsplit("-v", 1)[0] == key]
    newest = max(versions, key=lambda env_id: int(env_id.rsplit("-v", 1)[1]), default=None)
    return newest or name


def supported_envs():
    """(Atari game names, the newest version of each other registered env with discrete actions
    and array observations, the ids among those that need an optional package)."""
    games = sorted(game_name(env_id) for env_id in gym.registry
                   if env_id.startswith("ALE/") and env_id.endswith("-v5"))
    newest = {}
    for env_id, spec in gym.registry.items():
        module = str(spec.entry_point)
        if "classic_control" in module or "box2d" in module:
            newest[env_id.rsplit("-v", 1)[0]] = resolve_env_id(env_id.rsplit("-v", 1)[0])
    tuned = {env for _, env in ENV_DEFAULTS}
    others, missing = [], []
    for env_id in newest.values():
        try:
            env = gym.make(env_id)
        except gym.error.DependencyNotInstalled:
            if env_id in tuned:  # without the package its spaces cannot be checked
                others.append(env_id)
                missing.append(env_id)
            continue
        if (isinstance(env.action_space, gym.spaces.Discrete)
                and isinstance(env.observation_space, gym.spaces.Box)):
            others.append(env_id)
        env.close()
    return games, others, missing


def list_envs():
    """Print what --env accepts."""
    games, others, missing = supported_envs()
    print(f"Atari games ({len(games)}; --env takes the name in any case, e.g. --env pong; RAM by "
          "default, --obs pixels for the screen):")
    print(textwrap.fill(", ".join(games), 100, initial_indent="  ", subsequent_indent="  "))
    print("Random and human scores (DQN Zoo's table; HNS = (score - random) / (human - random)):")
    scored = [f"{game} {random_score:g}/{human:g}"
              for game, (random_score, human) in ATARI_RANDOM_HUMAN.items()]
    print(textwrap.fill(", ".join(scored), 100, initial_indent="  ", subsequent_indent="  "))
    print("Other environments with discrete actions (--env cartpole means CartPole-v1):")
    for env_id in others:
        print(f"  {env_id}" + ("  (needs: pip install box2d pygame)" if env_id in missing
                                else ""))


def training_flags(args):
    """The training flags given on this command line, as text to pass on to another run (all
    but --env, --seed, --out and --gif-at-end)."""
    flags = []
    for name in config_flags():
        value = getattr(args, name, None)
        if value is None or name in ("env_id", "out", "gif_at_end", "seed"):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            flags += [flag, *map(str, value)]
        else:
            flags += [flag, str(value)]
    return flags


def benchmark_pairs(args):
    """The (env_id, seed) pairs --benchmark-games asks for: every game × every seed, seed by
    seed (all games of seed 0 first, so a benchmark stopped early has every game)."""
    named = [resolve_env_id(name) for name in args.benchmark_games or TUNING_GAMES]
    env_ids = list(dict.fromkeys(named))  # a game named twice (breakout Breakout) runs once
    if len(env_ids) < len(named):
        print(f"games benchmark: {len(named) - len(env_ids)} game(s) named more than once; each "
              "runs once", flush=True)
    for env_id in env_ids:
        if not env_id.startswith("ALE/") or env_id not in gym.registry:
            raise ValueError(f"--benchmark-games takes Atari games; {env_id!r} is not one "
                             "(see --list-envs)")
    if args.seed is not None:
        raise ValueError("--benchmark-games takes --seeds S [S ...], not --seed")
    seeds = list(dict.fromkeys(args.seeds if args.seeds is not None else BENCHMARK_SEEDS))
    if any(seed < 0 for seed in seeds):
        raise ValueError(f"--seeds must be at least 0, got {min(seeds)}")
    if any(seed > MAX_SEED for seed in seeds):
        raise ValueError(f"--seeds must be at most {MAX_SEED:,} (numpy's limit), got {max(seeds)}")
    return [(env_id, seed) for seed in seeds for env_id in env_ids]


def benchmark_folder(args, child_flags):
    """The benchmark's folder: --out (new, empty, or an earlier benchmark with the same
    training flags, which this one continues) or a new runs/games-TIME."""
    if not args.out:
        return new_folder(Path("runs") / ("games-" + time.strftime("%Y%m%d-%H%M%S")))
    folder = Path(args.out)
    state = folder / BENCHMARK_STATE
    if state.is_file():
        flags = read_benchmark_state(state, child_flags)["flags"]
        if flags != child_flags and not same_settings(flags, child_flags):
            raise ValueError(f"--out {folder} holds a benchmark trained with other flags "
                             f"({' '.join(map(str, flags)) or 'none'}); give the same flags to "
                             "continue it, or a new --out")
    # a folder that holds only run.lock is one a benchmark was killed in before it wrote
    # anything (if that benchmark still runs, its lock refuses this one); one that holds only
    # a benchmark's files and run folders lost its benchmark.json: its runs rebuild the report
    elif folder.exists() and (not folder.is_dir() or not all(
            is_benchmark_file(f) for f in folder.iterdir())):
        raise ValueError(f"--out {folder} exists and is not an empty folder or a benchmark")
    return folder


def same_settings(flags, other_flags):
    """True if two lists of training flags give the same hyperparameters (e.g. `--dueling`,
    already the Atari default, beside no flag at all)."""
    parser = build_parser()
    try:
        configs = [config_from_args(parser.parse_args(["--algo", "dqn", *map(str, f)]), "dqn")
                   for f in (flags, other_flags)]
    except (ValueError, SystemExit):
        return False
    learned = [{k: v for k, v in dataclasses.asdict(c).items() if k not in RUN_OPTIONS}
               for c in configs]
    return learned[0] == learned[1]


def is_benchmark_file(path):
    """True for what a games benchmark writes into its folder: its lock, report, pictures,
    its runs' logs and run folders."""
    return (path.name in ("run.lock", "games.md", "results.csv", "games.png", "aggregates.png",
                          "submitit")
            or (path.name.endswith(".log") and "-seed" in path.name)
            or (path.is_dir() and "-seed" in path.name and is_run_folder(path)))


def check_same_hyperparameters(folder, pairs, child_flags):
    """Refuse to continue a benchmark whose runs were trained with other hyperparameters than a
    new run with the same flags gets now (the defaults changed since it started, e.g. a newer
    breakout_rl.py): its report would mix the two settings."""
    parser = build_parser()
    for env_id, seed in pairs:
        config_path = folder / pair_name(env_id, seed) / "config.json"
        if not config_path.is_file():
            continue
        now = config_from_args(parser.parse_args(["--algo", "dqn", "--env", env_id, "--seed",
                                                  str(seed), *child_flags]), "dqn")
        try:
            differences = config_json_differences(config_path, now)
        except (OSError, ValueError, AttributeError):
            continue  # the run itself refuses an unreadable folder when it resumes
        differ = [f"{name}={written} (now {value})"
                  for name, written, value in sorted(differences) if name not in RUN_OPTIONS
                  and not (name == "total_steps" and written > value)]  # extended by hand
        if differ:
            raise ValueError(f"--out {folder}: {config_path.parent.name} was trained with "
                             f"{', '.join(differ)}: the defaults have changed since this "
                             "benchmark started, and its report would mix them; use a new --out")


def pause_runs_with_this_one(running):
    """Ctrl-Z (SIGTSTP) on a benchmark stops its local runs too (each runs in a session of its
    own, which the terminal's Ctrl-Z does not reach), then the benchmark; `fg` or `bg`
    (SIGCONT) continues them all. `running`: the dict of runs, read when the signal comes.
    Returns the handler it replaced (None where it installed none), for the caller to restore."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal,
                                                                                 "SIGTSTP"):
        return None

    def signal_runs(sig):
        for run in list(running.values()):
            if hasattr(run, "process"):   # local child processes (submitit jobs have none)
                with contextlib.suppress(OSError):
                    os.killpg(run.process.pid, sig)

    def pause(signum, frame):
        signal_runs(signal.SIGSTOP)
        # SIGSTOP, not SIGTSTP: the kernel drops a SIGTSTP in an orphaned process group
        os.kill(os.getpid(), signal.SIGSTOP)   # this process stops here until SIGCONT
        signal_runs(signal.SIGCONT)
    return signal.signal(signal.SIGTSTP, pause)


def run_games_benchmark(args):
    """--benchmark-games: check the games and flags, then run benchmark_games."""
    pairs = benchmark_pairs(args)
    if args.algo == "pg" or args.obs == "pixels":
        raise ValueError("--benchmark-games trains DQN from RAM; drop --algo pg / --obs pixels")
    cfg = config_from_args(args, "dqn")  # refuses bad or foreign flags before anything starts
    if args.submitit_param and not args.submitit:
        raise ValueError("--submitit-param needs --submitit local or --submitit slurm")
    if args.submitit == "slurm" and not shutil.which("sbatch"):
        raise ValueError("--submitit slurm needs Slurm's sbatch on PATH: run the benchmark on the "
                         "cluster's login node (or try the jobs here with --submitit local)")
    parameters = submitit_parameters(args.submitit_param, cfg) if args.submitit else None
    if args.jobs is None:
        jobs = len(pairs) if args.submitit == "slurm" else max(1, (os.cpu_count() or 1) // 2)
    else:
        jobs = args.jobs
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    jobs = min(jobs, len(pairs))  # never more at once than there are runs
    pick_device(cfg.device)       # --device cuda without a GPU: refused before any folder exists
    child_flags = training_flags(args)
    folder = benchmark_folder(args, child_flags)
    check_same_hyperparameters(folder, pairs, child_flags)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot write to --out {folder}: {first_line(error)}") from None
    if args.submitit:   # a job may start in another folder: give it absolute paths
        folder = folder.resolve()
    lock = RunLock(folder).acquire()   # one benchmark at a time in a folder
    try:
        launcher = (SubmititJobs(args.submitit, folder, parameters) if args.submitit
                    else LocalProcesses(jobs))
        where = f"through submitit ({args.submitit})" if args.submitit else "on this machine"
        print(f"games benchmark: {len(pairs)} run(s) ({len({e for e, _ in pairs})} game(s) × "
              f"{len({s for _, s in pairs})} seed(s)), {jobs} at a time {where}, writing to "
              f"{folder}", flush=True)
        try:
            with stop_on_signals():  # Ctrl-C, SIGTERM, …: the runs save and stop, report stays
                results, aggregates = benchmark_games(pairs, folder, child_flags, launcher, jobs,
                                                      cfg.total_steps)
        except StopTraining as stop:
            stop.saved = (f"the runs saved their checkpoints and {folder / 'games.md'} holds the "
                          "report so far; the same command resumes them")
            raise
    finally:
        lock.release()
    for r in results:
        print(f"  {r['game'] + '-seed' + str(r['seed']):<22} mean {r['score']:8.1f}  HNS "
              f"{r['hns']:6.2f}  {r['steps']:>10,} steps  {r['minutes']:5.1f} min  {r['status']}")
    for line in aggregates:
        if line:
            print(line.replace("**", ""))
    print(f"wrote {folder / 'games.md'}, results.csv and the pictures")
    return 0 if all(r["status"] == "ok" for r in results) else 1


# Each command and the flags that only it reads: a flag given to another command would be
# silently ignored, so it is refused instead.
COMMANDS = {"eval": "--eval", "plot": "--plot", "explain": "--explain", "resume": "--resume",
            "benchmark_games": "--benchmark-games", "benchmark_env": "--benchmark-env",
            "benchmark_train": "--benchmark-train", "list_envs": "--list-envs"}
COMMAND_FLAGS = {"gif": ("eval",), "to": ("plot", "explain"), "metric": ("plot",),
                 "reach": ("plot",),
                 "eval_eps": ("eval", "explain"),
                 "seeds": ("benchmark_games",), "jobs": ("benchmark_games",),
                 "submitit": ("benchmark_games",), "submitit_param": ("benchmark_games",)}


def check_one_command(args):
    """Raise ValueError for two commands at once (--eval with --plot …) or a flag that the
    chosen command does not read (--gif without --eval, --seeds when training …)."""
    def given(name):
        value = getattr(args, name)
        return value is not None and value is not False
    chosen = [name for name in COMMANDS if given(name)]
    if len(chosen) > 1:
        raise ValueError(f"{COMMANDS[chosen[0]]} and {COMMANDS[chosen[1]]} are two commands; "
                         "run them one at a time")
    for flag, commands in COMMAND_FLAGS.items():
        if given(flag) and not set(chosen) & set(commands):
            owners = " or ".join(COMMANDS[c] for c in commands)
            raise ValueError(f"--{flag.replace('_', '-')} goes with {owners}"
                             + (f", not {COMMANDS[chosen[0]]}" if chosen else
                                " (training does not read it)"))
    if chosen == ["benchmark_games"] and args.env_id:
        raise ValueError("--benchmark-games takes its games as names after it (e.g. "
                         "--benchmark-games Pong Breakout), not --env")


def run_tool(args):
    """--eval, --plot, --explain, --list-envs, --benchmark-train or --benchmark-env; returns the
    exit status."""
    threads = CommonConfig.threads if args.threads is None else args.threads
    check_threads(threads)
    torch.set_num_threads(threads)
    eps = DEFAULT_EVAL_EPS if args.eval_eps is None else args.eval_eps  # --eval, --explain
    if args.list_envs:
        list_envs()
    elif args.benchmark_train:
        cfg = config_from_args(args, "dqn")
        training, raw_same, raw_one = benchmark_training(cfg, cfg.max_minutes * 60 or 30.0)
        how = cfg.vector if cfg.num_envs > 1 else "one env"
        print(f"{cfg.env_id}, --num-envs {cfg.num_envs} ({how}, {torch.get_num_threads()} "
              f"torch thread(s), {os.cpu_count()} cores): training "
              f"{training:,.0f} agent steps/s while learning; random play {raw_same:,.0f} steps/s "
              f"with the same envs, {raw_one:,.0f} with one env; training = "
              f"{training / raw_one:.0%} of one env")
    elif args.eval:
        if args.gif:
            check_output_file(args.gif, "--gif", b"GIF8", "GIF")
        scores = evaluate(args.eval, 10 if args.episodes is None else args.episodes, eps,
                          gif_path=args.gif, env_id=args.env_id)
        print(f"{len(scores)} games: mean {np.mean(scores):.2f} ± {np.std(scores):.2f}, "
              f"min {min(scores):g}, max {max(scores):g}" +
              (f"; first game written to {args.gif}" if args.gif else ""))
    elif args.plot:
        to = args.to or "compare.png"
        check_output_file(to, "--to", b"\x89PNG", "PNG")
        runs = labelled_runs(args.plot, args.metric)   # each run folder read once
        print(f"wrote {to}: " + "; ".join(draw_runs(runs, to, args.metric)))
        if not args.metric:
            print(runs_table(runs, args.reach or ()))
    elif args.explain:
        run = Path(args.explain)
        to = args.to or (run if run.is_dir() else run.parent) / "explain.png"
        check_output_file(to, "--to", b"\x89PNG", "PNG")
        for line in explain(run, to, 3 if args.episodes is None else args.episodes, eps):
            print(line)
    else:
        env_id = args.env_id or DQNConfig.env_id
        rate, scores = benchmark_env(env_id)
        mean = f"{np.mean(scores):.2f} over {len(scores)} games" if scores else "no full game"
        constant = constant_action_scores(env_id)
        best = max(constant, key=lambda a: constant[a] if math.isfinite(constant[a]) else -1e9)
        name = str(best)
        env = make_env(env_id)
        if hasattr(env.unwrapped, "get_action_meanings"):  # Atari games name their actions
            name += f" = {env.unwrapped.get_action_meanings()[best]}"
        env.close()
        print(f"{env_id}: {rate:,.0f} env steps/s with random actions; random policy "
              f"scores {mean}; the best constant action ({name}) scores {constant[best]:.2f}")
    return 0


def saved_text(checkpoint_path):
    """What a stopped run has on disk, in words, for its last message."""
    try:
        progress = load_checkpoint(checkpoint_path)["progress"]
    except ValueError:
        return f"no checkpoint was written to {checkpoint_path.parent} yet"
    return (f"{checkpoint_path} is the last complete checkpoint (game {progress['games']}, "
            f"step {progress['env_step']:,})")


def resume_config(args, resume_from):
    """(algo, config, run folder) to continue `args.resume` with the flags given."""
    if "progress" not in resume_from or "train_state" not in resume_from:
        raise ValueError(f"{args.resume} holds weights but no training state to resume")
    if args.out:
        raise ValueError("--resume continues in the run's own folder; drop --out")
    algo = resume_from["algo"]
    if args.algo and args.algo != algo:
        raise ValueError(f"{args.resume} is a --algo {algo} run, not --algo {args.algo}")
    if args.env_id and args.env_id != resume_from["env_id"]:
        raise ValueError(f"{args.resume} was trained on {resume_from['env_id']}, "
                         f"not {args.env_id}")
    stored = resume_from["config"]
    for name in ARCHITECTURE_FIELDS:
        given = getattr(args, name, None)
        if given is not None and hasattr(stored, name):
            given = tuple(given) if isinstance(given, list) else given
            if given != getattr(stored, name):
                raise ValueError(f"--{name.replace('_', '-')} cannot change when resuming: the "
                                 f"checkpoint's network was built with {getattr(stored, name)}")
    cfg = config_from_args(args, algo, base=stored)
    out_dir = Path(args.resume if Path(args.resume).is_dir() else Path(args.resume).parent)
    check_not_behind(Path(args.resume), out_dir, resume_from["progress"]["games"])
    edits = config_json_edits(out_dir / "config.json", stored)
    if edits:
        print(f"{out_dir / 'config.json'} was edited ({edits}); a resumed run takes its settings "
              "from model.pt and the flags given, and rewrites config.json: give the setting as "
              "a flag to change it", flush=True)
    return algo, cfg, out_dir


def config_json_differences(path, cfg):
    """[(field, value in the config.json at `path`, value in cfg)] for each field of the config
    dataclass `cfg` that config.json holds with another value; OSError, ValueError or
    AttributeError where the file is not readable JSON of an object."""
    written = json.loads(path.read_text(encoding="utf-8-sig"))
    written = {k: tuple(v) if isinstance(v, list) else v for k, v in written.items()}
    return [(name, written[name], value) for name, value in dataclasses.asdict(cfg).items()
            if name in written and written[name] != value]


def config_json_edits(path, stored):
    """How config.json differs from the checkpoint's config `stored` ('' if it does not, or is
    missing), e.g. "lr is 0.001 there, 0.0001 in model.pt"."""
    if not path.is_file():
        return ""
    try:
        changed = [f"{name} is {written!r} there, {value!r} in model.pt"
                   for name, written, value in config_json_differences(path, stored)]
    except (OSError, ValueError, AttributeError):
        return "it is not readable JSON any more"
    return "; ".join(changed[:3]) + ("; …" if len(changed) > 3 else "")


def check_not_behind(resumed, out_dir, games):
    """Raise ValueError if `resumed`, a checkpoint file other than out_dir/model.pt, is behind
    what out_dir holds: resuming it would cut the newer history and replace the newer model.pt.
    (Resuming the folder's own model.pt after a crash drops only the games it never saw.)"""
    own = out_dir / "model.pt"
    if resumed.is_dir() or (own.exists() and own.resolve() == resumed.resolve()):
        return
    newer = []
    if own.is_file():
        own_games = load_checkpoint(own)["progress"]["games"]
        if own_games > games:
            newer.append(f"its model.pt is at game {own_games}")
    history = out_dir / "history.csv"
    played = len(read_history(history)) if history.is_file() else 0
    if played > games:
        newer.append(f"history.csv holds {played} games")
    if newer:
        raise ValueError(f"{resumed} is at game {games} but {out_dir} is further on ("
                         f"{' and '.join(newer)}); resuming it there would cut the newer games: "
                         f"copy it into a new folder and --resume it from there")


def train(args):
    """Train (or resume) as the command line says; returns the exit status."""
    resume_from = load_checkpoint(args.resume) if args.resume else None
    if resume_from:
        algo, cfg, out_dir = resume_config(args, resume_from)
    else:
        algo = args.algo or "dqn"
        cfg = config_from_args(args, algo)
        applied = env_defaults_applied(args, algo)
        if applied:
            print(f"defaults for {cfg.env_id}: " +
                  ", ".join(f"{name}={value}" for name, value in applied.items()), flush=True)
        out_dir = Path(cfg.out) if cfg.out else default_out_dir(algo, cfg.env_id, cfg.seed)
    if algo == "dqn":
        start = resume_from["progress"]["env_step"] if resume_from else 0
        # the replay buffer starts empty in every invocation, a resumed one too
        if start >= cfg.total_steps:
            raise ValueError(f"{args.resume} has reached its --total-steps {cfg.total_steps:,} "
                             "already; give a larger --total-steps to train on")
        if start + max(cfg.learning_starts, cfg.batch_size) >= cfg.total_steps:
            raise ValueError(f"--learning-starts {cfg.learning_starts} leaves no step to learn "
                             f"in: the run ends at --total-steps {cfg.total_steps:,}" +
                             (f" and starts at step {start:,}" if start else ""))
    if cfg.tensorboard:
        tensorboard_writer(None)   # the package is there, before a run folder is made
    device, reason = pick_device(cfg.device, getattr(cfg, "obs", "ram"))
    if algo == "dqn":
        print(f"device: {device} ({reason})", flush=True)
        if cfg.num_envs > 1:
            print(vector_text(cfg), flush=True)
    torch.set_num_threads(cfg.threads)
    # Adam's running averages of squared gradients drift into "denormal" floats (below ~1e-38),
    # which CPUs process many times slower; flushing them to zero makes each update ~2.5× faster
    # here and changes nothing that matters numerically. (NumPy 1.x then warns, once, that the
    # smallest subnormal float "is zero": that is the flush working, not a fault.)
    torch.set_flush_denormal(True)
    warnings.filterwarnings("ignore", message="The value of the smallest subnormal")
    seed_everything(cfg.seed)
    lock, created, out_dir = open_run_folder(out_dir, fresh=resume_from is None,
                                             numbered=not (resume_from or cfg.out))
    try:
        with stop_on_signals():
            if algo == "dqn":
                recorder = train_dqn(cfg, out_dir, device, resume_from, args.command)
            else:
                recorder = train_pg(cfg, out_dir, resume_from, args.command)
    except StopTraining as stop:  # a signal while starting, or a second one while saving
        stop.saved = saved_text(out_dir / "model.pt")
        raise
    finally:
        lock.release()
        remove_if_empty(out_dir, created)
    mean = (f"final 100-game mean {recorder.mean100():.2f}" if recorder.games else
            "no game finished yet")
    print(f"{recorder.games} games, {mean}; model.pt, history.csv and curve.png are in "
          f"{out_dir}", flush=True)
    if cfg.gif_at_end and recorder.exit_code == 0:
        try:
            scores = evaluate(out_dir / "model.pt", games=1, gif_path=out_dir / "agent.gif")
            print(f"agent.gif: one evaluation game (ε {DEFAULT_EVAL_EPS}), score {scores[0]:g}")
        except ValueError as error:  # e.g. CartPole renders with pygame, an optional package
            print(f"agent.gif skipped: {error}")
    return recorder.exit_code


class QuietWhenClosed:
    """sys.stdout that stops writing, instead of raising BrokenPipeError, once its reader has
    gone (`| head`, a closed tee, a dropped ssh): progress lines are not worth a run. The
    stream's file descriptor then points at os.devnull, so Python's own flush at exit is quiet
    too."""

    def __init__(self, stream):
        self.stream, self.reader_gone = stream, False

    def write(self, text):
        if not self.reader_gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self.stop_writing()
        return len(text)

    def flush(self):
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self.stop_writing()

    def stop_writing(self):
        self.reader_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.stream.fileno())
        os.close(devnull)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv=None):
    """Entry point; `argv` lets tests call main([...]). Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command = list(sys.argv[1:] if argv is None else argv)  # for the run's provenance
    try:
        check_one_command(args)
        if args.env_id:
            args.env_id = resolve_env_id(args.env_id)
        if args.benchmark_games is not None:
            return run_games_benchmark(args)
        if (args.eval or args.plot or args.explain or args.benchmark_env or args.list_envs
                or args.benchmark_train):
            return run_tool(args)
        return train(args)
    except (ValueError, OSError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C outside training (evaluating, plotting): nothing to save
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except StopTraining as stop:  # a signal while starting, or a second one while saving
        print(f"{parser.prog}: stopped by {stop}; "
              f"{getattr(stop, 'saved', 'nothing of a run was written')}", file=sys.stderr)
        return stop.exit_code


if __name__ == "__main__":
    # Ctrl-C raises KeyboardInterrupt again
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.stdout = QuietWhenClosed(sys.stdout)
    sys.exit(main())
