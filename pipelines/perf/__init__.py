"""Speed and machine checks: the benchmark, the reference CycleGAN beside ours, the bounded GPU check."""
