"""Where an agent step of the default DQN run goes (issue #36's profile).

    python docs/speed_profile.py [--repeats 200]

Builds the Agent exactly as `python breakout_rl.py --algo dqn` does (Breakout RAM: batch 256,
dueling, 3-step returns, one torch thread), fills its replay buffer to the default 1M
transitions with random bytes (sampling cost depends on the buffer's size, not its content),
and times each part of the work one agent step costs, in this process, one part after the
other; then the raw env (one Breakout env through the training stack) and the best rate one core
reaches on a large matrix product, for the GFLOP/s comparison. Run it with nothing else on the
machine: the numbers are wall-clock times.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import breakout_rl as rl  # noqa: E402


def per_call(function, repeats):
    """Median seconds of one call over 5 rounds of `repeats` calls each."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            function()
        rounds.append((time.perf_counter() - start) / repeats)
    return statistics.median(rounds)


def linear_flops(network):
    """Multiply-adds ×2 of one sample's forward pass through the network's Linear layers, and
    those of its first layer (whose input gradient the backward pass does not compute)."""
    layers = [m for m in network.modules() if isinstance(m, torch.nn.Linear)]
    return (sum(2 * m.in_features * m.out_features for m in layers),
            2 * layers[0].in_features * layers[0].out_features)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    repeats = parser.parse_args().repeats
    torch.set_num_threads(1)
    rl.seed_everything(0)
    args = rl.build_parser().parse_args(["--algo", "dqn"])
    cfg = rl.config_from_args(args, "dqn")
    agent = rl.make_agent(cfg, (128,), 4, seed=0)
    memory, rng = agent.memory, np.random.default_rng(0)
    state = rng.integers(0, 256, 128, dtype=np.uint8)
    memory.push(state, 0, 0.0, state, False, 1)           # allocates the arrays
    memory.states[:] = rng.integers(0, 256, memory.states.shape, dtype=np.uint8)
    memory.next_states[:] = rng.integers(0, 256, memory.states.shape, dtype=np.uint8)
    memory.actions[:] = rng.integers(0, 4, memory.capacity)
    memory.rewards[:] = rng.integers(0, 2, memory.capacity)
    memory.steps[:] = 3
    memory.size = memory.capacity
    batch = memory.sample()
    net, target = agent.qnetwork_local, agent.qnetwork_target

    def forward_no_grad():
        with torch.no_grad():
            net(batch.next_states)

    def forward_backward():
        agent.optimizer.zero_grad(set_to_none=True)
        q = net(batch.states).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        torch.nn.functional.smooth_l1_loss(q, batch.rewards).backward()

    forward_backward()
    times = {
        "sample a batch (numpy gather → tensors)": per_call(memory.sample, repeats),
        "forward Q_local(s′), no grad": per_call(forward_no_grad, repeats),
        "forward Q_target(s′), no grad": per_call(forward_no_grad, repeats),
        "forward Q_local(s) + loss + backward": per_call(forward_backward, repeats),
        "optimizer step (fused Adam)": per_call(agent.optimizer.step, repeats),
        "learn(batch): the whole gradient step": per_call(lambda: agent.learn(batch), repeats),
        "learn_from_memory(): sample + learn": per_call(agent.learn_from_memory, repeats),
    }
    streams = [(rng.integers(0, 256, 128, dtype=np.uint8), s) for s in range(32)]
    step_count = [0]

    def remember_32():   # one env step of 32 envs: 32 transitions through the n-step lists
        step_count[0] += 1
        for obs, stream in streams:
            agent.remember(obs, 1, 0.0, obs, False, False, stream)
    states = np.stack([obs for obs, _ in streams])
    times["remember() × 32 (one env step of 32 envs)"] = per_call(remember_32, repeats)
    times["act_batch(32 states)"] = per_call(lambda: agent.act_batch(states, 0.01), repeats)
    times["hard target copy (every 1,000 agent steps)"] = per_call(
        lambda: agent.hard_update(net, target), repeats)
    for name, seconds in times.items():
        print(f"{name:48s} {seconds * 1e3:8.3f} ms")

    # per agent step: one env step of 32 envs is 32 agent steps; a gradient step every 4
    per_step = {
        "gradient step (every 4)": times["learn_from_memory(): sample + learn"] / 4,
        "Agent.step bookkeeping": times["remember() × 32 (one env step of 32 envs)"] / 32,
        "acting": times["act_batch(32 states)"] / 32,
        "target copy": times["hard target copy (every 1,000 agent steps)"] / 1000,
    }
    learner = sum(per_step.values())
    rate, _ = rl.benchmark_env("ALE/Breakout-v5", steps=5000)
    print(f"\nper agent step, learning process: {learner * 1e6:.0f} µs = " + ", ".join(
        f"{k} {v * 1e6:.0f} µs ({v / learner:.0%})" for k, v in per_step.items()))
    print(f"per agent step, env (one raw env, in the worker process): {1e6 / rate:.0f} µs "
          f"({rate:,.0f} steps/s)")
    print(f"bound on 2 cores if both processes were always busy: "
          f"{1 / max(learner, 1 / rate):,.0f} agent steps/s; one core for both: "
          f"{1 / (learner + 1 / rate):,.0f}")

    forward, first = linear_flops(net)
    size = batch.states.shape[0]
    flops = size * (3 * forward + 2 * forward - first)  # 3 forwards; backward ≈ 2× one, less
    # the first layer's input gradient
    network_time = (2 * times["forward Q_local(s′), no grad"]
                    + times["forward Q_local(s) + loss + backward"])
    big = torch.randn(2048, 2048)
    peak = 2 * 2048 ** 3 / per_call(lambda: big @ big, 3)
    print(f"\ngradient step: {flops / 1e9:.3f} GFLOP in the three forwards and the backward, "
          f"{network_time * 1e3:.2f} ms there: {flops / network_time / 1e9:.0f} GFLOP/s; "
          f"one core's fp32 matrix product 2048²: {peak / 1e9:.0f} GFLOP/s "
          f"({flops / network_time / peak:.0%} of it)")
    # what reduced precision could buy where the core has it (AVX-512 BF16, AMX): the hidden
    # layer's product at the batch's size, fp32 against bfloat16
    x, w = torch.randn(size, 256), torch.randn(256, 256)
    rates = [2 * size * 256 * 256 / per_call(lambda: a @ b, 1000) / 1e9
             for a, b in ((x, w), (x.bfloat16(), w.bfloat16()))]
    print(f"({size}×256)·(256×256) on one core: fp32 {rates[0]:.0f} GFLOP/s, bfloat16 "
          f"{rates[1]:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
